"""transcode(): probe → validate → plan → encode (one ffmpeg process) → MP4 → master.

Everything is written into one local folder with a fixed layout (paths relative to it):

    master.m3u8                      written by us (plan.render_master)
    v0/index.m3u8 v0/init.mp4 v0/seg_00001.m4s ...   lowest rendition
    v1/..., v2/...                   the rest of the ladder
    vN/encoder.m3u8                  ffmpeg's own playlist: read, never published
    download.mp4 poster.jpg storyboard.jpg storyboard.vtt

While ffmpeg runs, `on_partial` receives every new segment of every rendition (in lockstep,
so all renditions play the same span), then our EVENT playlists and the master: the clip
can be played as it is encoded. At the end, `TranscodeResult.files` lists every output in
upload order (segments before their playlist, the master last), so a reader never sees a
playlist that references a missing object.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio

from app.media.errors import MediaRejected
from app.media.plan import (
    DOWNLOAD,
    MASTER,
    POSTER,
    STORYBOARD_JPG,
    STORYBOARD_VTT,
    MediaSegment,
    Rendition,
    TranscodePlan,
    VariantStats,
    encode_args,
    parse_media_playlist,
    plan_transcode,
    remux_download_args,
    render_master,
    render_media_playlist,
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
# Share of the work (for progress) of the MP4 remux and playlists after the encode.
_FINISH_WEIGHT = 0.02
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


@dataclass(frozen=True)
class PartialOutput:
    """What is playable so far, handed to `on_partial` while ffmpeg encodes."""

    files: tuple[OutputFile, ...]  # new segments, then the (rewritten) playlists, master last
    renditions: tuple[RenditionOutput, ...]  # measured over the segments so far
    segments: int  # per rendition, published so far (every rendition has as many)


class _Publisher:
    """Turns what ffmpeg has finished so far into a PartialOutput: the segments that every
    rendition has completed (ffmpeg renames a segment into place, then rewrites its
    playlist the same way, so a listed segment is whole)."""

    def __init__(self, plan: TranscodePlan, out_dir: Path) -> None:
        self.plan = plan
        self.out_dir = out_dir
        self.published = 0
        self.poster_sent = False

    def next(self) -> PartialOutput | None:
        """Blocking (file I/O): run it in a thread."""
        listed: list[tuple[str | None, list[MediaSegment]]] = []
        for r in self.plan.renditions:
            try:
                text = (self.out_dir / r.encoder_playlist).read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
            listed.append(parse_media_playlist(text))
        count = min(len(segments) for _, segments in listed)
        if count <= self.published:
            return None
        paths: list[str] = []
        for r, (init, segments) in zip(self.plan.renditions, listed, strict=True):
            if init and self.published == 0:
                paths.append(f"{r.name}/{init}")
            paths += [f"{r.name}/{s.uri}" for s in segments[self.published : count]]
            playlist = render_media_playlist(init, segments[:count], complete=False)
            _write_text(self.out_dir / r.playlist, playlist)
            paths.append(r.playlist)
        if not self.poster_sent and (self.out_dir / POSTER).is_file():  # written atomically
            paths.append(POSTER)
            self.poster_sent = True
        measured = _measure(self.out_dir, self.plan.renditions)
        _write_text(self.out_dir / MASTER, _master(measured))
        paths.append(MASTER)
        self.published = count
        return PartialOutput(
            files=tuple(_output_file(self.out_dir, p) for p in paths),
            renditions=tuple(measured),
            segments=count,
        )


async def transcode(
    source: Path,
    out_dir: Path,
    *,
    max_duration_s: int,
    max_dimension: int,
    on_progress: ProgressCallback | None = None,
    on_partial: Callable[[PartialOutput], Awaitable[None]] | None = None,
    on_probed: Callable[[ProbeResult], Awaitable[None]] | None = None,
    preset: str | None = None,
    x264_threads: int | None = None,
    readrate: float | None = None,
    watch_interval_s: float = 1.0,
    limits: Limits = DEFAULT_LIMITS,
) -> TranscodeResult:
    """Transcode `source` into `out_dir` (created; must be empty).

    Raises MediaRejected (permanent: the upload is unacceptable), FfmpegFailed /
    FfmpegTimeout (transient), or whatever a callback raises (ffmpeg is killed first).

    `on_partial(partial)` runs, while ffmpeg encodes, each time every rendition has new
    segments (looked for every `watch_interval_s`); one call at a time, and ffmpeg goes on
    meanwhile (so do its uploads in threads); a failure in it aborts the transcode. The
    first call makes the clip playable. `on_progress(fraction)` gets a monotonic 0..1,
    about every second. `on_probed(probe)` runs once the source is validated, before the
    encode (so its facts can be published with the first partial output). `preset` forces
    one x264 preset for every rung (tests: "ultrafast"); `readrate` caps how fast the
    source is read, in multiples of real time.
    """
    await asyncio.to_thread(_prepare_out_dir, out_dir)
    probed = await probe(source)
    validate(probed, max_duration_s=max_duration_s, max_dimension=max_dimension)
    plan = plan_transcode(probed, preset=preset)
    progress = _Progress(on_progress, [1.0, _FINISH_WEIGHT])
    if on_probed is not None:
        await on_probed(probed)

    await asyncio.to_thread(_make_dirs, out_dir, plan.renditions)
    args = encode_args(
        plan,
        source,
        plan.renditions,
        with_images=True,
        x264_threads=x264_threads,
        readrate=readrate,
    )
    if readrate is not None:
        timeout_s = timeout_for(round(plan.duration_ms / min(readrate, 1.0)))
    else:
        timeout_s = timeout_for(plan.duration_ms)
    encode = run_ffmpeg(
        args,
        timeout_s=timeout_s,
        on_progress=progress.for_step(0),
        duration_ms=plan.duration_ms,
        cwd=out_dir,
        limits=limits,
    )
    if on_partial is None:
        await encode
    else:
        await _encode_publishing(encode, _Publisher(plan, out_dir), on_partial, watch_interval_s)

    measured = await asyncio.to_thread(finish_playlists, plan, out_dir)
    _check_complete(plan, measured[0], out_dir)
    await asyncio.to_thread(_write_text, out_dir / STORYBOARD_VTT, _vtt(plan))
    await _make_download(plan, out_dir, limits, progress.for_step(1))
    await asyncio.to_thread(_write_text, out_dir / MASTER, _master(measured))
    files = await asyncio.to_thread(_list_files, out_dir, plan.renditions)
    await progress.done()
    return TranscodeResult(probe=probed, plan=plan, renditions=tuple(measured), files=tuple(files))


async def _encode_publishing(
    encode: Coroutine[Any, Any, None],
    publisher: _Publisher,
    on_partial: Callable[[PartialOutput], Awaitable[None]],
    interval_s: float,
) -> None:
    """Run the encode; meanwhile hand each new PartialOutput to `on_partial`, one at a time.
    What ffmpeg finishes after its last look is left to the caller's final publication."""
    finished = asyncio.Event()

    async def encode_then_signal() -> None:
        try:
            await encode
        finally:
            finished.set()

    async def watch() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), interval_s)
            if finished.is_set():
                return
            # Not abandoned on cancellation: it writes into the folder the caller removes.
            partial = await anyio.to_thread.run_sync(publisher.next)
            if partial is not None:
                await on_partial(partial)

    await _run_alongside(encode_then_signal(), watch())


async def _run_alongside(main: Coroutine[Any, Any, _T], side: Awaitable[None]) -> _T:
    """Run `main` and `side` concurrently; the first failure cancels the other and is raised
    as itself (not as an ExceptionGroup)."""
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


def finish_playlists(plan: TranscodePlan, out_dir: Path) -> list[RenditionOutput]:
    """ffmpeg is done: our playlists of every segment, with ENDLIST, measured."""
    for r in plan.renditions:
        init, segments = parse_media_playlist(
            (out_dir / r.encoder_playlist).read_text(encoding="utf-8")
        )
        _write_text(out_dir / r.playlist, render_media_playlist(init, segments, complete=True))
    return _measure(out_dir, plan.renditions)


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


def _output_file(out_dir: Path, path: str) -> OutputFile:
    return OutputFile(path, content_type(path), (out_dir / path).stat().st_size)


def _list_files(out_dir: Path, renditions: Sequence[Rendition]) -> list[OutputFile]:
    """Upload order: each rendition's init and segments, then its playlist; the images, the
    MP4; the master playlist last."""
    paths: list[str] = []
    for r in renditions:
        init, segments = parse_media_playlist((out_dir / r.playlist).read_text(encoding="utf-8"))
        paths += [f"{r.name}/{p}" for p in ([init] if init else []) + [s.uri for s in segments]]
        paths.append(r.playlist)
    paths += [POSTER, STORYBOARD_JPG, STORYBOARD_VTT, DOWNLOAD, MASTER]
    return [_output_file(out_dir, p) for p in paths]
