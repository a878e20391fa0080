"""transcode(): probe → validate → plan → encode (2 passes) → images → MP4 → master.

Everything is written into one local folder with a fixed layout (paths relative to it):

    master.m3u8                      written by us (plan.render_master), always last
    v0/index.m3u8 v0/init.mp4 v0/seg_00001.m4s ...   lowest rendition (viewable pass)
    v1/..., v2/...                   the rest of the ladder (ladder pass; its audio is
                                     copied from v0, see plan.encode_args `audio_from`)
    download.mp4 poster.jpg storyboard.jpg storyboard.vtt

The caller uploads `TranscodeResult.files` in order (segments before their playlist, the
master last), so a reader never sees a playlist that references a missing object.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.media.errors import MediaRejected
from app.media.plan import (
    DOWNLOAD,
    MASTER,
    POSTER,
    STORYBOARD_JPG,
    STORYBOARD_VTT,
    Rendition,
    TranscodePlan,
    VariantStats,
    encode_args,
    parse_media_playlist,
    plan_transcode,
    remux_download_args,
    render_master,
    storyboard_vtt,
    variant_stats,
)
from app.media.probe import ProbeResult, probe, validate
from app.media.runner import DEFAULT_LIMITS, Limits, run_ffmpeg, timeout_for

CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
}
# Relative cost of decoding the source vs encoding the same number of pixels with x264
# veryfast (measured); used only to weight progress across the passes.
_DECODE_WEIGHT = 0.35
# A file whose decodable video is shorter than its header claims by more than this is
# truncated or damaged (a cut-off upload with the index at the front decodes "fine").
_TRUNCATION_TOLERANCE = 0.05
_TRUNCATION_SLACK_MS = 1000

ProgressCallback = Callable[[float], Awaitable[None]]
_T = TypeVar("_T")


def content_type(path: str) -> str:
    return CONTENT_TYPES[Path(path).suffix]


@dataclass(frozen=True)
class OutputFile:
    path: str  # relative to the output folder, "/"-separated: the storage key suffix
    content_type: str
    size: int


@dataclass(frozen=True)
class RenditionOutput:
    rendition: Rendition
    playlist: str
    bandwidth: int  # as in the master playlist
    average_bandwidth: int | None
    codecs: str  # as in the master playlist, read from the init segment
    duration_ms: int

    @property
    def width(self) -> int:
        return self.rendition.width

    @property
    def height(self) -> int:
        return self.rendition.height

    @property
    def bitrate(self) -> int:
        return self.rendition.video_bitrate


@dataclass(frozen=True)
class TranscodeResult:
    probe: ProbeResult
    plan: TranscodePlan
    renditions: tuple[RenditionOutput, ...]  # ascending size
    files: tuple[OutputFile, ...]  # every output, in safe upload order (master last)
    master: str = MASTER
    download: str = DOWNLOAD
    poster: str = POSTER
    storyboard: str = STORYBOARD_JPG
    storyboard_vtt: str = STORYBOARD_VTT


class _Progress:
    """Maps per-run fractions onto one monotonic 0..1 over all runs."""

    def __init__(self, callback: ProgressCallback | None, weights: Sequence[float]) -> None:
        total = sum(weights) or 1.0
        self._callback = callback
        self._spans: list[tuple[float, float]] = []
        start = 0.0
        for w in weights:
            self._spans.append((start, w / total))
            start += w / total
        self._last = 0.0

    def for_step(self, step: int) -> ProgressCallback | None:
        if self._callback is None:
            return None
        base, span = self._spans[step]

        async def report(fraction: float) -> None:
            await self._report(base + span * min(fraction, 1.0) * 0.999)

        return report

    async def _report(self, value: float) -> None:
        if self._callback is not None and value > self._last:
            self._last = value
            await self._callback(value)

    async def done(self) -> None:
        await self._report(1.0)


def _pass_cost(renditions: Sequence[Rendition], source_px: int) -> float:
    return _DECODE_WEIGHT * source_px + sum(r.width * r.height for r in renditions)


async def transcode(
    source: Path,
    out_dir: Path,
    *,
    max_duration_s: int,
    max_dimension: int,
    on_progress: ProgressCallback | None = None,
    on_viewable: Callable[[list[OutputFile]], Awaitable[None]] | None = None,
    on_probed: Callable[[ProbeResult], Awaitable[None]] | None = None,
    preset: str | None = None,
    early_viewable: bool = True,
    x264_threads: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> TranscodeResult:
    """Transcode `source` into `out_dir` (created; must be empty).

    Raises MediaRejected (permanent: the upload is unacceptable), FfmpegFailed /
    FfmpegTimeout (transient), or whatever a callback raises (ffmpeg is killed first).

    `on_viewable(files)` runs once the lowest rendition, poster, storyboard and a master
    playlist listing only that rendition are on disk; it runs concurrently with the rest of
    the encode (so do its uploads in threads), and a failure in it aborts the transcode.
    `on_progress(fraction)` gets a monotonic 0..1, about every second, possibly while
    `on_viewable` is still running. `on_probed(probe)` runs once the source is validated,
    before any encode (so its facts can be published with "viewable").

    The second pass copies the audio encoded by the first (one AAC encode per clip, not one
    per rendition). `early_viewable=False` encodes the whole ladder in one process (one
    decode instead of two: less CPU in total, but viewable only once all renditions exist,
    and the audio encoded once per rendition); `preset` forces
    one x264 preset for every rung (tests: "ultrafast").
    """
    await asyncio.to_thread(_prepare_out_dir, out_dir)
    probed = await probe(source)
    validate(probed, max_duration_s=max_duration_s, max_dimension=max_dimension)
    plan = plan_transcode(probed, preset=preset, early_viewable=early_viewable)
    assert probed.video is not None
    source_px = probed.video.display_width * probed.video.display_height
    progress = _Progress(
        on_progress,
        [
            _pass_cost(plan.first_pass, source_px),
            _pass_cost(plan.second_pass, source_px) if plan.second_pass else 0.0,
            0.02 * _pass_cost(plan.renditions, source_px),  # MP4 remux, playlists
        ],
    )
    timeout_s = timeout_for(plan.duration_ms)

    async def encode(
        step: int,
        renditions: Sequence[Rendition],
        with_images: bool,
        audio_from: Path | None = None,
    ) -> None:
        await asyncio.to_thread(_make_dirs, out_dir, renditions)
        args = encode_args(
            plan,
            source,
            renditions,
            with_images=with_images,
            x264_threads=x264_threads,
            audio_from=audio_from,
        )
        await run_ffmpeg(
            args,
            timeout_s=timeout_s,
            on_progress=progress.for_step(step),
            duration_ms=plan.duration_ms,
            cwd=out_dir,
            limits=limits,
        )

    if on_probed is not None:
        await on_probed(probed)

    # Pass 1: the lowest rung (or the whole ladder), storyboard and poster.
    await encode(0, plan.first_pass, True)
    done = list(plan.first_pass)
    outputs = await asyncio.to_thread(_measure, out_dir, done)
    _check_complete(plan, outputs[0], out_dir)
    await asyncio.to_thread(_write_text, out_dir / STORYBOARD_VTT, _vtt(plan))
    await asyncio.to_thread(_write_text, out_dir / MASTER, _master(outputs))
    early = await asyncio.to_thread(_list_files, out_dir, done, include_download=False)

    async def finish() -> list[RenditionOutput]:
        if plan.second_pass:
            # The audio was encoded in pass 1: pass 2 copies it from the lowest rung.
            audio = out_dir / ".audio.fmp4"
            await asyncio.to_thread(concat_rendition, out_dir, plan.renditions[0], audio)
            try:
                await encode(1, plan.second_pass, False, audio)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(audio.unlink)
        everything = list(plan.renditions)
        measured = await asyncio.to_thread(_measure, out_dir, everything)
        await _make_download(plan, out_dir, limits, progress.for_step(2))
        await asyncio.to_thread(_write_text, out_dir / MASTER, _master(measured))
        return measured

    final = await _run_alongside(finish(), on_viewable(early) if on_viewable else None)
    files = await asyncio.to_thread(_list_files, out_dir, list(plan.renditions), True)
    await progress.done()
    return TranscodeResult(probe=probed, plan=plan, renditions=tuple(final), files=tuple(files))


async def _run_alongside(main: Coroutine[Any, Any, _T], side: Awaitable[None] | None) -> _T:
    """Run `main` and `side` concurrently; the first failure cancels the other and is raised
    as itself (not as an ExceptionGroup)."""
    if side is None:
        return await main
    try:
        async with asyncio.TaskGroup() as group:
            main_task = group.create_task(main)
            group.create_task(_as_coroutine(side))
    except BaseExceptionGroup as eg:
        raise eg.exceptions[0] from None
    return main_task.result()


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


def _vtt(plan: TranscodePlan) -> str:
    return storyboard_vtt(plan.storyboard, plan.duration_ms)


def _master(outputs: Sequence[RenditionOutput]) -> str:
    stats = {
        o.rendition.name: VariantStats(o.bandwidth, o.average_bandwidth, o.codecs)
        for o in outputs
        if o.average_bandwidth is not None
    }
    return render_master([o.rendition for o in outputs], stats)


def _prepare_out_dir(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise ValueError(f"output folder {out_dir} is not empty")


def _make_dirs(out_dir: Path, renditions: Sequence[Rendition]) -> None:
    for r in renditions:
        (out_dir / r.name).mkdir(exist_ok=True)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _measure(out_dir: Path, renditions: Sequence[Rendition]) -> list[RenditionOutput]:
    outputs = []
    for r in renditions:
        text = (out_dir / r.playlist).read_text(encoding="utf-8")
        init, segments = parse_media_playlist(text)
        sizes = [((out_dir / r.name / s.uri).stat().st_size, s.duration_s) for s in segments]
        init_bytes = (out_dir / r.name / init).read_bytes() if init else b""
        stats = variant_stats(sizes, init_bytes)
        outputs.append(
            RenditionOutput(
                rendition=r,
                playlist=r.playlist,
                bandwidth=max(r.nominal_bandwidth, stats.peak_bps if stats else 0),
                average_bandwidth=stats.average_bps if stats else None,
                codecs=stats.codecs if stats and stats.codecs else r.codecs,
                duration_ms=round(sum(s.duration_s for s in segments) * 1000),
            )
        )
    return outputs


def _check_complete(plan: TranscodePlan, output: RenditionOutput, out_dir: Path) -> None:
    missing = [name for name in (POSTER, STORYBOARD_JPG) if not (out_dir / name).is_file()]
    expected = plan.duration_ms
    short_by = expected - output.duration_ms
    if short_by > max(_TRUNCATION_SLACK_MS, expected * _TRUNCATION_TOLERANCE) or missing:
        raise MediaRejected(
            "invalid_media",
            f"The file is truncated or damaged: only {output.duration_ms / 1000:.1f}s of "
            f"{expected / 1000:.1f}s could be decoded.",
        )


async def _make_download(
    plan: TranscodePlan, out_dir: Path, limits: Limits, on_progress: ProgressCallback | None
) -> None:
    fragmented = out_dir / ".download.fmp4"
    await asyncio.to_thread(concat_rendition, out_dir, plan.download, fragmented)
    try:
        await run_ffmpeg(
            remux_download_args(fragmented),
            timeout_s=timeout_for(plan.duration_ms, factor=1.0),
            on_progress=on_progress,
            duration_ms=plan.duration_ms,
            cwd=out_dir,
            limits=limits,
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(fragmented.unlink)


def concat_rendition(out_dir: Path, r: Rendition, dest: Path) -> None:
    """init segment + media segments = one valid fragmented MP4."""
    init, segments = parse_media_playlist((out_dir / r.playlist).read_text(encoding="utf-8"))
    parts = [init] if init else []
    parts += [s.uri for s in segments]
    with dest.open("wb") as out:
        for part in parts:
            with (out_dir / r.name / part).open("rb") as f:
                while chunk := f.read(1 << 20):
                    out.write(chunk)


def _list_files(
    out_dir: Path, renditions: Sequence[Rendition], include_download: bool
) -> list[OutputFile]:
    """Upload order: each rendition's init and segments, then its playlist; the images, the
    MP4; the master playlist last."""
    paths: list[str] = []
    for r in renditions:
        init, segments = parse_media_playlist((out_dir / r.playlist).read_text(encoding="utf-8"))
        paths += [f"{r.name}/{p}" for p in ([init] if init else []) + [s.uri for s in segments]]
        paths.append(r.playlist)
    paths += [POSTER, STORYBOARD_JPG, STORYBOARD_VTT]
    if include_download:
        paths.append(DOWNLOAD)
    paths.append(MASTER)
    return [OutputFile(p, content_type(p), (out_dir / p).stat().st_size) for p in paths]
