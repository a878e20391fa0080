"""The ``TRANSCODE_CLIP`` job: source → probe/validate → ladder, MP4, poster, storyboard →
storage.

While ffmpeg encodes, each batch of new segments is stored, then the playlists that list
them, then the master, and only then is ``clips.media`` (with status "viewable") updated:
players never meet a reference to a missing file. "viewable" waits until the encode, at its
speed so far, stays ahead of a player that starts then (``plan.stall_free_start``).
"ready" is the same after the last files.
Each attempt writes under its own version prefix ``…/media/<job>-<attempt>/``; after a
successful attempt, the prefixes of earlier attempts (a crashed worker's partial output,
possibly published as "viewable") are deleted, leaving exactly one set of renditions. A clip
that fails for good keeps no media.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from app.clips import lifecycle
from app.clips.models import Clip, ClipStatus, media_root
from app.jobs.registry import JobContext
from app.jobs.service import LeaseLost, PermanentJobError
from app.media.errors import MediaRejected
from app.media.pipeline import OutputFile, PartialOutput, RenditionOutput, transcode
from app.media.plan import stall_free_start
from app.media.probe import ProbeResult
from app.storage.base import ObjectNotFound, Storage
from app.storage.local import LocalStorage

log = logging.getLogger("peerpitch.transcode")

PROGRESS_WRITE_INTERVAL_S = 1.0


def version_name(job_id: uuid.UUID, attempt: int) -> str:
    return f"{job_id.hex[:12]}-{attempt}"


class _ClipWriter:
    """The job's changes to its clip, each a short transaction through the lifecycle (which
    leaves a deleted clip alone)."""

    def __init__(self, ctx: JobContext, clip_id: uuid.UUID) -> None:
        self.ctx = ctx
        self.clip_id = clip_id
        self._last_progress_write = 0.0

    async def _in_transaction(self, step: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        async with self.ctx.sessionmaker.begin() as session:
            return await step(session)

    async def progress(self, fraction: float) -> None:
        await self.ctx.progress(fraction)  # heartbeat; raises LeaseLost if the job moved on
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress_write < PROGRESS_WRITE_INTERVAL_S:
            return
        self._last_progress_write = now
        # 1.0 is kept for "ready": the last outputs are still being stored when ffmpeg
        # reports the end.
        shown = round(min(fraction, 0.99), 4)
        await self._in_transaction(
            lambda session: lifecycle.record_progress(session, self.clip_id, shown)
        )

    async def publish(self, media: dict[str, Any], status: ClipStatus, **facts: Any) -> bool:
        """Point the clip at `media` with `status`; False if the clip is gone (deleted, or
        failed meanwhile). A worker that lost the job's lease raises LeaseLost instead of
        publishing over the attempt that took over."""
        await self.ctx.heartbeat()
        settings = self.ctx.settings
        published: bool = await self._in_transaction(
            lambda session: lifecycle.publish(
                session, self.clip_id, status, media, settings, **facts
            )
        )
        return published

    async def fail(self, code: str, message: str) -> None:
        # What was published while encoding is deleted by the caller.
        await self._in_transaction(
            lambda session: lifecycle.processing_failed(session, [self.clip_id], code, message)
        )


async def _upload(
    storage: Storage, out_dir: Path, prefix: str, files: Sequence[OutputFile], done: set[str]
) -> None:
    # In the order given: segments before their playlists, the master last. Playlists are
    # rewritten as the encode goes on; everything else is written once.
    for f in files:
        if f.path in done and not f.path.endswith(".m3u8"):
            continue
        await storage.put_file(prefix + f.path, out_dir / f.path, content_type=f.content_type)
        done.add(f.path)


def _probe_facts(probed: ProbeResult) -> dict[str, Any]:
    meta = probed.metadata()
    return {
        "duration_ms": meta["duration_ms"],
        "width": meta["width"],
        "height": meta["height"],
        "fps": meta["fps"],
        "has_audio": meta["has_audio"],
        "video_codec": meta["video_codec"],
        "audio_codec": meta["audio_codec"],
        "bitrate": meta["bit_rate"],
    }


def _manifest(
    version: str, prefix: str, files: set[str], renditions: Sequence[RenditionOutput]
) -> dict[str, Any]:
    def present(name: str) -> str | None:
        return name if name in files else None

    variants = [
        {
            "name": r.rendition.name,
            "width": r.width,
            "height": r.height,
            "bandwidth": r.bandwidth,
            "codecs": r.codecs,
            "playlist": r.playlist,
        }
        for r in renditions
    ]
    return {
        "version": version,
        "prefix": prefix,
        "master": "master.m3u8",
        "variants": variants,
        "download": present("download.mp4"),
        "poster": present("poster.jpg"),
        "storyboard": present("storyboard.jpg"),
        "storyboard_vtt": present("storyboard.vtt"),
    }


async def transcode_clip(ctx: JobContext) -> None:
    clip_id = uuid.UUID(ctx.payload["clip_id"])
    storage = ctx.services.storage
    settings = ctx.settings
    async with ctx.sessionmaker() as session:
        clip = await session.get(Clip, clip_id)
    if clip is None or clip.deleted_at is not None or clip.status == ClipStatus.ready:
        return  # deleted, or a rerun of a job whose success was not recorded
    if clip.status == ClipStatus.failed:
        return
    writer = _ClipWriter(ctx, clip_id)
    version = version_name(ctx.job_id, ctx.attempts)
    root = media_root(clip.org_id, clip.id)
    prefix = f"{root}{version}/"
    # Earlier attempts of this job (a crashed worker's output, possibly published while it
    # was encoded) and a previously published version: unreferenced once this one is done.
    stale = {f"{root}{version_name(ctx.job_id, n)}/" for n in range(1, ctx.attempts)}
    if clip.media and clip.media["prefix"] != prefix:
        stale.add(clip.media["prefix"])
    scratch = Path(await anyio.to_thread.run_sync(_make_scratch, settings.scratch_dir))
    out_dir = scratch / "out"
    uploaded: set[str] = set()
    try:
        source = scratch / "source"
        try:
            in_place = await _source_in_place(storage, clip.source_key)
            if in_place is None:
                await storage.download_to(clip.source_key, source)
            else:
                source = in_place
        except ObjectNotFound as exc:
            message = "The uploaded source file is missing from storage."
            await writer.fail("source_missing", message)
            await _discard(storage, {prefix, *stale})
            raise PermanentJobError("source_missing", message) from exc

        facts: dict[str, Any] = {}
        encode_started = time.monotonic()

        async def on_probed(probed: ProbeResult) -> None:
            nonlocal encode_started
            facts.update(_probe_facts(probed))
            encode_started = time.monotonic()  # the encode starts now: its speed from here

        published: dict[str, Any] = {}

        async def on_partial(partial: PartialOutput) -> None:
            # Segments, then playlists, then the master: the clip plays while it is encoded.
            await _upload(storage, out_dir, prefix, partial.files, uploaded)
            # "viewable" only once a player starting now would not catch up with the encode
            # (the segments are stored meanwhile: less to store at the end).
            if (
                not published
                and settings.transcode_stall_free_start
                and not stall_free_start(
                    encoded_s=partial.renditions[0].duration_ms / 1000,
                    elapsed_s=time.monotonic() - encode_started,
                    duration_s=facts["duration_ms"] / 1000,
                )
            ):
                return
            media = _manifest(version, prefix, uploaded, partial.renditions)
            if media != published:  # new variants' figures or the poster: tell the API
                # Duration and size with the status: timestamped feedback needs them at once.
                if not await writer.publish(media, ClipStatus.viewable, **facts):
                    raise _ClipGone  # stops ffmpeg
                published.update(media)

        result = await transcode(
            source,
            out_dir,
            max_duration_s=settings.max_duration_s,
            max_dimension=settings.max_dimension,
            on_progress=writer.progress,
            on_partial=on_partial if settings.transcode_early_viewable else None,
            on_probed=on_probed,
            preset=settings.transcode_preset,
            readrate=settings.transcode_readrate,
        )
        await _upload(storage, out_dir, prefix, result.files, uploaded)
        published_ready = await writer.publish(
            _manifest(version, prefix, uploaded, result.renditions),
            ClipStatus.ready,
            **_probe_facts(result.probe),
        )
        if not published_ready:
            raise _ClipGone
    except _ClipGone:  # deleted (or failed) meanwhile: what we stored is garbage
        await storage.delete_prefix(prefix)
        return
    except MediaRejected as exc:
        await writer.fail(exc.code, exc.message)
        await _discard(storage, {prefix, *stale})
        raise PermanentJobError(exc.code, exc.message) from exc
    except (LeaseLost, PermanentJobError):
        raise  # LeaseLost: another worker owns the job now and will clean up
    except Exception as exc:
        if ctx.is_last_attempt:
            await writer.fail("processing_failed", f"Processing failed: {exc}")
            await _discard(storage, {prefix, *stale})
        raise
    finally:
        await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)
    # Earlier attempts of this job and a previously published version are now unreferenced.
    for old in sorted(stale):
        await storage.delete_prefix(old)
    log.info("clip %s ready: %d files under %s", clip_id, len(uploaded), prefix)


class _ClipGone(Exception):
    """The clip was deleted (or failed) while it was being transcoded."""


async def _discard(storage: Storage, prefixes: set[str]) -> None:
    """A clip that failed for good keeps no media. Best effort: storage may be why it
    failed; deleting the clip purges whatever is left."""
    for prefix in sorted(prefixes):
        try:
            await storage.delete_prefix(prefix)
        except Exception:
            log.warning("could not delete %s of a failed clip", prefix, exc_info=True)


async def _source_in_place(storage: Storage, key: str) -> Path | None:
    """Local storage: the stored source itself, read where it is (ffmpeg only reads it; a
    purge meanwhile unlinks a file ffmpeg keeps open) instead of copied to scratch first."""
    if not isinstance(storage, LocalStorage):
        return None
    found = await storage.locate(key)
    if found is None:
        raise ObjectNotFound(key)
    return Path(found.path)


def _make_scratch(base: Path | None) -> str:
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="pp-transcode-", dir=base)
