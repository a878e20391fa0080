"""Thin, safe execution of ffmpeg/ffprobe.

Every run:
- refuses argument lists whose inputs lack `-protocol_whitelist file` and `-format_whitelist`
  (the format whitelist is what stops HLS/concat/AVI playlists from reading local files);
- gets `-nostdin`, a wall-clock timeout (the whole process group is SIGKILLed), an
  address-space, CPU-time, file-size and core limit, and a scrubbed environment (no
  credentials of the worker leak into a process parsing hostile input);
- keeps the last ~8 KB of stderr for the error it raises.

Limits are applied with util-linux `prlimit` when available (it sets them, then execs ffmpeg, so
the limits hold before the first byte of input is parsed); otherwise with `preexec_fn`, which is
only safe because nothing but `setrlimit` runs between fork and exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.media.errors import FfmpegFailed, FfmpegTimeout

ProgressCallback = Callable[[float], Awaitable[None]]

STDERR_TAIL_BYTES = 8 * 1024
DEFAULT_ADDRESS_SPACE_BYTES = 4 * 1024**3
DEFAULT_MAX_FILE_BYTES = 16 * 1024**3
# ffprobe prints a few KB of JSON for a sane file; a crafted one with thousands of streams is not.
FFPROBE_STDOUT_LIMIT = 8 * 1024**2


@dataclass(frozen=True)
class Limits:
    """Resource limits of one child process (None: inherit)."""

    address_space_bytes: int | None = DEFAULT_ADDRESS_SPACE_BYTES
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES


DEFAULT_LIMITS = Limits()


def timeout_for(duration_ms: int | None, *, base_s: float = 60.0, factor: float = 10.0) -> float:
    """Wall-clock budget of one ffmpeg run over a source of this duration."""
    seconds = max(0, duration_ms or 0) / 1000
    return base_s + factor * seconds


def cpu_seconds_for(timeout_s: float) -> int:
    # CPU time is summed over threads: allow every core busy for the whole wall-clock budget.
    return int(timeout_s * (os.cpu_count() or 1)) + 10


def check_safe_inputs(args: Sequence[str]) -> None:
    """Raise ValueError unless every `-i` is preceded (since the previous `-i`) by
    `-protocol_whitelist file` and a `-format_whitelist`; lavfi inputs are never allowed."""
    seen_protocol = seen_format = False
    for i, arg in enumerate(args):
        if arg == "-protocol_whitelist":
            seen_protocol = i + 1 < len(args) and args[i + 1] == "file"
        elif arg == "-format_whitelist":
            seen_format = i + 1 < len(args) and bool(args[i + 1])
        elif arg == "-i":
            if not (seen_protocol and seen_format):
                raise ValueError("every input needs -protocol_whitelist file and -format_whitelist")
            if i + 1 >= len(args) or not args[i + 1].startswith("file:"):
                raise ValueError("inputs must be given as file: URLs")
            seen_protocol = seen_format = False
        elif arg == "-f" and i + 1 < len(args) and args[i + 1] == "lavfi":
            raise ValueError("lavfi inputs are not allowed")


class ProgressParser:
    """Turns `-progress` key=value blocks into a monotonic fraction of the source duration."""

    def __init__(self, duration_ms: int | None) -> None:
        self._duration_us = max(0, duration_ms or 0) * 1000
        self._out_time_us: int | None = None
        self.fraction = 0.0

    def feed(self, line: str) -> float | None:
        """Feed one line; return the new fraction when a block ends and it increased."""
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key in ("out_time_us", "out_time_ms"):
            # ffmpeg 5.x prints microseconds under both names.
            with contextlib.suppress(ValueError):
                self._out_time_us = int(value)
        elif key == "out_time" and self._out_time_us is None:
            self._out_time_us = _parse_clock_us(value)
        elif key == "progress":
            new = 1.0 if value == "end" else self._fraction()
            self._out_time_us = None
            if new is not None and new > self.fraction:
                self.fraction = new
                return new
        return None

    def _fraction(self) -> float | None:
        if self._out_time_us is None or self._duration_us <= 0:
            return None
        # Never report completion before ffmpeg says "end".
        return min(max(self._out_time_us / self._duration_us, 0.0), 0.999)


def _parse_clock_us(value: str) -> int | None:
    try:
        h, m, s = value.split(":")
        return round((int(h) * 3600 + int(m) * 60 + float(s)) * 1_000_000)
    except ValueError:
        return None


def _child_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LC_ALL": "C",
        # glibc reserves 64 MiB of address space per malloc arena and thread; without this cap
        # RLIMIT_AS would mostly measure thread count rather than memory use.
        "MALLOC_ARENA_MAX": "2",
    }


def _limit_prefix(limits: Limits, cpu_s: int) -> list[str] | None:
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return None
    prefix = [prlimit, f"--cpu={cpu_s}:{cpu_s + 5}", "--core=0"]
    if limits.address_space_bytes is not None:
        prefix.append(f"--as={limits.address_space_bytes}")
    if limits.max_file_bytes is not None:
        prefix.append(f"--fsize={limits.max_file_bytes}")
    return [*prefix, "--"]


def _preexec(limits: Limits, cpu_s: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the forked child: setrlimit only
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.address_space_bytes is not None:
            n = limits.address_space_bytes
            resource.setrlimit(resource.RLIMIT_AS, (n, n))
        if limits.max_file_bytes is not None:
            n = limits.max_file_bytes
            resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))

    return apply


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL a child started in its own session, with everything it spawned."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def read_tail(stream: asyncio.StreamReader, keep: int) -> bytes:
    """Drain ``stream`` to its end, keeping only its last ``keep`` bytes."""
    buf = bytearray()
    while chunk := await stream.read(65536):
        buf += chunk
        if len(buf) > 2 * keep:
            del buf[:-keep]
    return bytes(buf[-keep:])


async def _run(
    program: str,
    args: Sequence[str],
    *,
    timeout_s: float,
    cwd: Path | None,
    limits: Limits,
    consume_stdout: Callable[[asyncio.StreamReader], Awaitable[None]],
) -> None:
    check_safe_inputs(args)
    cpu_s = cpu_seconds_for(timeout_s)
    exe = shutil.which(program) or program
    prefix = _limit_prefix(limits, cpu_s)
    cmd = [*(prefix or []), exe, *args]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=_child_env(),
        start_new_session=True,  # its own process group, so a kill reaches every child
        preexec_fn=None if prefix else _preexec(limits, cpu_s),
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr_task = asyncio.ensure_future(read_tail(proc.stderr, STDERR_TAIL_BYTES))
    try:
        async with asyncio.timeout(timeout_s):
            await consume_stdout(proc.stdout)
            returncode = await proc.wait()
            stderr = await stderr_task
    except TimeoutError:
        kill_group(proc)
        await proc.wait()
        raise FfmpegTimeout(timeout_s, _decode(await stderr_task), program=program) from None
    except BaseException:
        # Cancelled (lease lost, shutdown) or a callback failed: never leave ffmpeg running.
        kill_group(proc)
        await proc.wait()
        stderr_task.cancel()
        raise
    if returncode != 0:
        raise FfmpegFailed(returncode, _decode(stderr), program=program)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


async def run_ffmpeg(
    args: Sequence[str],
    *,
    timeout_s: float,
    on_progress: ProgressCallback | None = None,
    duration_ms: int | None = None,
    cwd: Path | None = None,
    limits: Limits = DEFAULT_LIMITS,
    progress_interval_s: float = 1.0,
) -> None:
    """Run ffmpeg with `args` (inputs, filters, outputs; no global flags needed).

    `on_progress(fraction)` gets a monotonic 0..1 fraction of `duration_ms`, at most once per
    `progress_interval_s` (ffmpeg reports every second) and always with 1.0 at the end.
    Raises FfmpegTimeout, FfmpegFailed, or whatever `on_progress` raises (ffmpeg is killed).
    """
    parser = ProgressParser(duration_ms)
    full = ["-nostdin", "-hide_banner", "-loglevel", "error", "-nostats"]
    full += ["-progress", "pipe:1", "-stats_period", "1", *args]
    last_call = float("-inf")

    async def consume(stdout: asyncio.StreamReader) -> None:
        nonlocal last_call
        async for raw in stdout:
            fraction = parser.feed(raw.decode("ascii", errors="replace"))
            if fraction is None or on_progress is None:
                continue
            now = time.monotonic()
            if fraction >= 1.0 or now - last_call >= progress_interval_s:
                last_call = now
                await on_progress(fraction)

    await _run("ffmpeg", full, timeout_s=timeout_s, cwd=cwd, limits=limits, consume_stdout=consume)


async def run_ffprobe(
    args: Sequence[str], *, timeout_s: float, limits: Limits = DEFAULT_LIMITS
) -> bytes:
    """Run ffprobe and return its stdout (bounded; overflow raises FfmpegFailed)."""
    out = bytearray()

    async def consume(stdout: asyncio.StreamReader) -> None:
        while chunk := await stdout.read(65536):
            out.extend(chunk)
            if len(out) > FFPROBE_STDOUT_LIMIT:
                raise FfmpegFailed(1, "ffprobe output exceeds limit", program="ffprobe")

    await _run(
        "ffprobe",
        ["-hide_banner", "-loglevel", "error", *args],
        timeout_s=timeout_s,
        cwd=None,
        limits=limits,
        consume_stdout=consume,
    )
    return bytes(out)
