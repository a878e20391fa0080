"""The ``ANALYZE_SPEECH`` job: a ready clip's MP4 → app.speech.analyze() → its stored
analysis (with the ``clip.speech_analyzed`` event and the owner's ``pitch_analyzed``).

Payload ``{"clip_id", "org_id", "force"?}``. Idempotent: a clip whose current media version
is analysed already is left alone (unless ``force``: analyse it again). A transcript becomes
captions: their files are stored next to the renditions before the result names them.

A failure a later attempt may cure (a killed recogniser, a timeout on a busy machine,
storage) is raised, so the queue retries it with backoff; a final one (undecodable audio, an
engine that cannot load) is stored as ``failed`` at once, and so is a retryable one on the
last attempt. Nothing here ever changes the clip's status.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from pathlib import Path

import anyio

from app.jobs.registry import JobContext
from app.jobs.service import LeaseLost
from app.speech import SpeechResult, SpeechSettings, analyze
from app.speech_analysis import maintenance, service
from app.speech_analysis.captions import (
    discard_caption_files,
    manifest_entry,
    store_caption_files,
)
from app.storage.base import ObjectNotFound

log = logging.getLogger("peerpitch.speech")


class SpeechRetry(Exception):
    """A failed analysis worth another attempt (the job queue retries it with backoff)."""


async def analyze_speech(ctx: JobContext) -> None:
    clip_id = uuid.UUID(ctx.payload["clip_id"])
    async with ctx.sessionmaker() as session:
        target = await service.analysis_target(
            session, clip_id, force=bool(ctx.payload.get("force"))
        )
    if target is None:
        return  # deleted, not ready, not analysed, or this version is analysed already
    speech_settings = ctx.settings.speech_settings()
    try:
        if target.has_audio:
            result = await _analyze(ctx, target, speech_settings)
        else:
            result = _no_audio(target, speech_settings)
    except (LeaseLost, SpeechRetry):
        raise  # LeaseLost: another worker owns the job now
    except ObjectNotFound as exc:
        # The MP4 went away: the clip was deleted or republished meanwhile (then its new
        # version has its own job, and storing below finds nothing current).
        if ctx.is_last_attempt:
            await _store_failure(ctx, target, speech_settings.engine, "media_missing", str(exc))
        raise
    except Exception as exc:
        if ctx.is_last_attempt:
            message = f"The analysis failed: {exc}"
            await _store_failure(ctx, target, speech_settings.engine, "job_failed", message)
        raise
    if result.is_retryable() and not ctx.is_last_attempt:
        raise SpeechRetry(f"{result.reason}: {result.message}")
    storage = ctx.services.storage
    captions = None
    transcript = result.transcript
    if result.status == "ready" and transcript is not None and transcript.segments:
        duration_ms = result.duration_ms or target.duration_ms or transcript.segments[-1].end_ms
        await store_caption_files(storage, target.media_prefix, transcript, duration_ms)
        captions = manifest_entry(transcript)
    await ctx.heartbeat()  # a worker that lost the job must not store over the new owner's
    async with ctx.sessionmaker.begin() as session:
        stored = await service.store_result(session, target, result, captions=captions)
    if not stored and captions is not None:
        await discard_caption_files(storage, target.media_prefix)
    log.info(
        "clip %s speech %s%s%s",
        clip_id,
        result.status,
        f" ({result.reason})" if result.reason else "",
        "" if stored else ": discarded, the clip changed meanwhile",
    )


async def _analyze(
    ctx: JobContext, target: service.Target, speech_settings: SpeechSettings
) -> SpeechResult:
    scratch = Path(await anyio.to_thread.run_sync(_make_scratch, ctx.settings.scratch_dir))
    try:
        media = scratch / "media.mp4"
        await ctx.services.storage.download_to(target.media_key, media)
        await ctx.heartbeat()
        return await analyze(
            media,
            settings=speech_settings,
            talk_track=target.talk_track,
            scratch=scratch,
            on_progress=ctx.progress,  # the lease's heartbeat; raises LeaseLost
        )
    finally:
        await anyio.to_thread.run_sync(shutil.rmtree, scratch, True)


def _no_audio(target: service.Target, speech_settings: SpeechSettings) -> SpeechResult:
    return SpeechResult(
        status="unavailable",
        reason="no_audio_stream",
        message="The recording has no audio.",
        engine=speech_settings.engine,
        language=speech_settings.language,
        duration_ms=target.duration_ms,
    )


async def _store_failure(
    ctx: JobContext, target: service.Target, engine: str, reason: str, message: str
) -> None:
    async with ctx.sessionmaker.begin() as session:
        await service.store_failure(session, target, engine, reason, message)


async def rematch_talk_track(ctx: JobContext) -> None:
    """``REMATCH_TALK_TRACK`` ``{"org_id", "stage"}``: the stage's analyses matched against
    its edited talk track, a batch per transaction (each batch reads the phrases anew)."""
    org_id = uuid.UUID(ctx.payload["org_id"])
    stage = str(ctx.payload["stage"])
    after: uuid.UUID | None = None
    changed = 0
    while True:
        await ctx.heartbeat()
        async with ctx.sessionmaker.begin() as session:
            count, after = await maintenance.rematch_batch(session, org_id, stage, after)
        changed += count
        if after is None:
            break
    log.info("stage %s of org %s: %d talk tracks matched again", stage, org_id, changed)


def _make_scratch(base: Path | None) -> str:
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix="pp-speech-", dir=base)
