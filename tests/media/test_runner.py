"""The runner: progress parsing (pure), input safety checks, timeouts, failures, limits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest

from app.media.errors import FfmpegFailed, FfmpegTimeout
from app.media.probe import input_args
from app.media.runner import (
    Limits,
    ProgressParser,
    check_safe_inputs,
    run_ffmpeg,
    timeout_for,
)
from tests.helpers.waiting import eventually
from tests.media.conftest import Clips


def feed(parser: ProgressParser, block: str) -> list[float]:
    return [f for line in block.splitlines() if (f := parser.feed(line)) is not None]


def test_progress_parser_reports_monotonic_fractions() -> None:
    p = ProgressParser(duration_ms=10_000)
    assert feed(p, "frame=1\nout_time_us=N/A\nout_time=N/A\nprogress=continue\n") == []
    assert feed(p, "out_time_us=2500000\nout_time_ms=2500000\nprogress=continue\n") == [0.25]
    # Going backwards (another output lagging) never lowers the reported value.
    assert feed(p, "out_time_us=2000000\nprogress=continue\n") == []
    assert feed(p, "out_time_ms=5000000\nprogress=continue\n") == [0.5]
    # Beyond the duration stays below 1 until ffmpeg says it ended.
    assert feed(p, "out_time_us=12000000\nprogress=continue\n") == [0.999]
    assert feed(p, "out_time_us=12000000\nprogress=end\n") == [1.0]


def test_progress_parser_reads_the_clock_form_and_unknown_duration() -> None:
    p = ProgressParser(duration_ms=60_000)
    assert feed(p, "out_time=00:00:15.000000\nprogress=continue\n") == [0.25]
    unknown = ProgressParser(duration_ms=None)
    assert feed(unknown, "out_time_us=5000000\nprogress=continue\n") == []
    assert feed(unknown, "progress=end\n") == [1.0]
    assert feed(unknown, "garbage\n\n=\n") == []


def test_timeout_for_scales_with_duration() -> None:
    assert timeout_for(0) == 60
    assert timeout_for(None) == 60
    assert timeout_for(30_000) == 360
    assert timeout_for(30_000, factor=1) == 90


@pytest.mark.parametrize(
    "args",
    [
        ["-i", "file:/x.mp4", "out.mp4"],
        ["-protocol_whitelist", "file", "-i", "file:/x.mp4", "out.mp4"],
        ["-format_whitelist", "mov", "-i", "file:/x.mp4", "out.mp4"],
        ["-protocol_whitelist", "file,http", "-format_whitelist", "mov", "-i", "file:/x.mp4"],
        ["-protocol_whitelist", "file", "-format_whitelist", "mov", "-i", "/x.mp4"],
        ["-protocol_whitelist", "file", "-format_whitelist", "hls", "-i", "http://h/x.m3u8"],
        ["-f", "lavfi", "-protocol_whitelist", "file", "-format_whitelist", "a", "-i", "file:x"],
        [*input_args(Path("/a.mp4")), "-i", "file:/b.mp4", "out.mp4"],
    ],
)
def test_unsafe_inputs_are_refused(args: list[str]) -> None:
    with pytest.raises(ValueError, match=r"input|lavfi"):
        check_safe_inputs(args)


def test_safe_inputs_pass() -> None:
    check_safe_inputs([*input_args(Path("/a.mp4")), *input_args(Path("/b.mp4")), "out.mp4"])
    check_safe_inputs(["-filter_complex", "anullsrc", "out.mp4"])


@pytest.mark.ffmpeg
async def test_child_environment_carries_no_secrets(
    clips: Clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t")
    monkeypatch.setenv("PEERPITCH_SECRET_KEY", "s3cr3t")
    # The environment the running ffmpeg really got (read from /proc, while it plays).
    args = ["-re", *input_args(clips.faststart()), "-f", "null", "-"]
    task = asyncio.create_task(run_ffmpeg(args, timeout_s=60, cwd=tmp_path))
    try:
        [pid] = await eventually(_ffmpeg_children, what="ffmpeg to start")
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    env = dict(item.split("=", 1) for item in environ.split("\0") if item)
    assert "s3cr3t" not in env.values()
    assert set(env) == {"PATH", "LC_ALL", "MALLOC_ARENA_MAX"}


@pytest.mark.ffmpeg
async def test_run_reports_progress_up_to_one(clips: Clips, tmp_path: Path) -> None:
    seen: list[float] = []

    async def on_progress(f: float) -> None:
        seen.append(f)

    args = [*input_args(clips.small(2)), "-c:v", "libx264", "-preset", "ultrafast"]
    args += ["-f", "mp4", "-protocol_whitelist", "file", "out.mp4"]
    await run_ffmpeg(
        args,
        timeout_s=60,
        on_progress=on_progress,
        duration_ms=2000,
        cwd=tmp_path,
        progress_interval_s=0,
    )
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)


@pytest.mark.ffmpeg
async def test_failure_raises_with_stderr_tail(clips: Clips, tmp_path: Path) -> None:
    args = [*input_args(clips.small()), "-vf", "no_such_filter", "-f", "null", "-"]
    with pytest.raises(FfmpegFailed) as e:
        await run_ffmpeg(args, timeout_s=30, cwd=tmp_path)
    assert e.value.returncode > 0
    assert "no_such_filter" in e.value.stderr_tail
    assert not isinstance(e.value, FfmpegTimeout)


@pytest.mark.ffmpeg
async def test_wall_clock_timeout_kills_ffmpeg(clips: Clips, tmp_path: Path) -> None:
    # -re reads at the native rate: a 4 s clip takes 4 s.
    args = ["-re", *input_args(clips.faststart()), "-f", "null", "-"]
    started = time.monotonic()
    with pytest.raises(FfmpegTimeout) as e:
        await run_ffmpeg(args, timeout_s=0.5, cwd=tmp_path)
    assert time.monotonic() - started < 3
    assert e.value.timeout_s == 0.5


@pytest.mark.ffmpeg
async def test_cancellation_kills_ffmpeg(clips: Clips, tmp_path: Path) -> None:
    args = ["-re", *input_args(clips.faststart()), "-f", "null", "-"]
    task = asyncio.create_task(run_ffmpeg(args, timeout_s=60, cwd=tmp_path))
    children = await eventually(_ffmpeg_children, what="ffmpeg to start")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2
    assert not (set(children) & set(_ffmpeg_children()))


def _ffmpeg_children() -> list[int]:
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and name == "ffmpeg":
            found.append(int(entry.name))
    return found


@pytest.mark.ffmpeg
async def test_address_space_limit_applies(clips: Clips, tmp_path: Path) -> None:
    args = [*input_args(clips.landscape()), "-c:v", "libx264", "-f", "null", "-"]
    with pytest.raises(FfmpegFailed):
        await run_ffmpeg(
            args, timeout_s=30, cwd=tmp_path, limits=Limits(address_space_bytes=64 * 1024**2)
        )
