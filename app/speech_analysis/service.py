"""Speech analysis of clips: which clips are analysed and when, storing a result (with its
event and notification), and reading it back for a caller who may see the clip.

A pitch or exemplar is analysed once it is ready, by its own ``analyze_speech`` job (queued
behind transcodes, so analysis never delays a clip's playback). The result is kept for the
media version it was computed from: a newer version of the clip gets a new job, and its
result replaces the old one. Whatever happens to an analysis, the clip's status is never
touched.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clips import lifecycle
from app.clips.models import Clip, ClipKind, ClipStatus
from app.clips.service import get_clip
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.events import service as events
from app.events import types as event_types
from app.jobs.kinds import ANALYZE_SPEECH
from app.jobs.service import enqueue
from app.notifications.models import NotificationKind
from app.notifications.service import Cause, notify
from app.search.service import index_transcript
from app.speech import EngineName, SpeechResult, TalkTrackPhrase, Transcript, match_talk_track
from app.speech_analysis.models import ClipSpeech, SpeechStatus
from app.speech_analysis.repository import SpeechRepository
from app.speech_analysis.schemas import SpeechOut
from app.stages.service import stage_skills
from app.tenancy import Principal

# Kinds whose speech is analysed (a feedback clip is a reply, not a performance).
ANALYSED_KINDS = frozenset({ClipKind.pitch, ClipKind.exemplar})
# After transcodes (priority 100): a queue of analyses never delays a clip's playback.
JOB_PRIORITY = 200
MESSAGE_LIMIT = 2000


async def enqueue_analysis(session: AsyncSession, clip_id: uuid.UUID) -> None:
    """The ready hook: queue the clip's analysis in the transaction that makes it ready."""
    clip = await session.get(Clip, clip_id)  # in the identity map: the hook's caller read it
    if clip is None or clip.kind not in ANALYSED_KINDS:
        return
    await queue_analysis(session, clip.id, clip.org_id)


async def queue_analysis(
    session: AsyncSession, clip_id: uuid.UUID, org_id: uuid.UUID, *, force: bool = False
) -> None:
    """One unfinished job per clip: it analyses whatever version is current when it runs;
    ``force`` analyses it even if that version is analysed already."""
    payload = {"clip_id": str(clip_id), "org_id": str(org_id)}
    await enqueue(
        session,
        ANALYZE_SPEECH,
        {**payload, "force": True} if force else payload,
        priority=JOB_PRIORITY,
        dedupe_key=f"{ANALYZE_SPEECH}:{clip_id}",
    )


@dataclass(frozen=True)
class Target:
    """What the job analyses: a ready clip's current media version."""

    clip_id: uuid.UUID
    org_id: uuid.UUID
    owner_id: uuid.UUID
    kind: ClipKind
    stage: str
    title: str
    media_version: str
    # From probing the source: renditions of a clip without audio carry a silent track, so
    # the analysis of its MP4 could only say "silent".
    has_audio: bool
    duration_ms: int | None
    # The MP4 download (small, on the playback timeline) or, without one, the source.
    media_key: str
    media_prefix: str  # the version's folder: captions are stored next to its renditions
    talk_track: tuple[TalkTrackPhrase, ...]


def _media_version(clip: Clip) -> str | None:
    version = (clip.media or {}).get("version")
    return str(version) if version else None


async def analysis_target(
    session: AsyncSession, clip_id: uuid.UUID, *, force: bool = False
) -> Target | None:
    """The clip to analyse, or None: deleted, not ready, not analysed (feedback), or its
    current version is analysed already (a rerun of a job whose success was not recorded)
    unless ``force``."""
    clip = await session.get(Clip, clip_id)
    if (
        clip is None
        or clip.deleted_at is not None
        or clip.status != ClipStatus.ready
        or clip.kind not in ANALYSED_KINDS
    ):
        return None
    version = _media_version(clip)
    if version is None:
        return None
    analysed = await SpeechRepository(session, clip.org_id).analysed_version(clip.id)
    if analysed == version and not force:
        return None
    assert clip.media is not None
    download = clip.media.get("download")
    media_key = f"{clip.media['prefix']}{download}" if download else clip.source_key
    return Target(
        clip_id=clip.id,
        org_id=clip.org_id,
        owner_id=clip.owner_id,
        kind=clip.kind,
        stage=clip.stage,
        title=clip.title,
        media_version=version,
        has_audio=clip.has_audio is not False,
        duration_ms=clip.duration_ms,
        media_key=media_key,
        media_prefix=str(clip.media["prefix"]),
        talk_track=await talk_track_of(session, clip.org_id, clip.stage),
    )


async def talk_track_of(
    session: AsyncSession, org_id: uuid.UUID, stage: str
) -> tuple[TalkTrackPhrase, ...]:
    """The stage's talk track now: every skill's phrases to use, then to avoid."""
    return tuple(
        TalkTrackPhrase(skill=skill.key, phrase=phrase, kind=kind)
        for skill in await stage_skills(session, org_id, stage)
        for kind, listed in (("use", skill.phrases_to_use), ("avoid", skill.phrases_to_avoid))
        for phrase in listed
    )


async def _still_current(session: AsyncSession, target: Target) -> bool:
    clip = (
        await session.execute(
            select(Clip.media, Clip.status).where(
                Clip.id == target.clip_id, Clip.deleted_at.is_(None)
            )
        )
    ).one_or_none()
    return (
        clip is not None
        and clip.status == ClipStatus.ready
        and (clip.media or {}).get("version") == target.media_version
    )


async def store_result(
    session: AsyncSession,
    target: Target,
    result: SpeechResult,
    *,
    captions: dict[str, Any] | None = None,
) -> bool:
    """Keep ``result`` as the clip's analysis, announce it and tell a pitch's owner, in the
    caller's transaction, and name its stored ``captions`` (app.speech_analysis.captions) in
    the clip's media. False (nothing stored) when the clip was deleted or replaced by a
    newer version meanwhile.

    The talk track is matched again against the stage's phrases as they are in this
    transaction: an admin who edited them while the recogniser ran is not overwritten by
    the phrases the job started with (app.stages announces edits; see rematch_talk_tracks).
    """
    result = _with_talk_track(result, await talk_track_of(session, target.org_id, target.stage))
    transcript = result.transcript
    stored = await _store(
        session,
        target,
        {
            "status": SpeechStatus(result.status),
            "reason": result.reason,
            "message": result.message[:MESSAGE_LIMIT] if result.message else None,
            "engine": result.engine,
            "confidence_class": result.confidence_class,
            "result": result.model_dump(mode="json", exclude={"transcript"}),
            "transcript": None if transcript is None else transcript.model_dump(mode="json"),
        },
    )
    if stored and captions is not None:
        await lifecycle.attach_captions(session, target.clip_id, target.media_version, captions)
    return stored


def _with_talk_track(result: SpeechResult, phrases: tuple[TalkTrackPhrase, ...]) -> SpeechResult:
    if result.transcript is None or result.status != "ready":
        return result
    talk = match_talk_track(result.transcript, phrases) if phrases else None
    return result if talk == result.talk_track else result.model_copy(update={"talk_track": talk})


async def store_failure(
    session: AsyncSession, target: Target, engine: str, reason: str, message: str
) -> bool:
    """A job that could not analyse the clip at all (its media is gone, or it broke on every
    attempt): the clip's analysis is ``failed``, the clip stays as it is."""
    return await _store(
        session,
        target,
        {
            "status": SpeechStatus.failed,
            "reason": reason,
            "message": message[:MESSAGE_LIMIT],
            "engine": engine,
            "confidence_class": None,
            "result": None,
            "transcript": None,
        },
    )


async def _store(session: AsyncSession, target: Target, values: dict[str, Any]) -> bool:
    if not await _still_current(session, target):
        return False
    values = {**values, "media_version": target.media_version, "analyzed_at": utcnow()}
    speech = SpeechRepository(session, target.org_id)
    await speech.save(target.clip_id, values)
    # The search index follows the stored transcript (none: the clip's transcript rows go).
    transcript = values["transcript"]
    await index_transcript(
        session,
        target.org_id,
        target.clip_id,
        target.media_version,
        None if transcript is None else Transcript.model_validate(transcript),
    )
    out = speech_out(target.clip_id, await speech.of_clip(target.clip_id, fresh=True))
    await events.record(
        session,
        org_id=target.org_id,
        type=event_types.CLIP_SPEECH_ANALYZED,
        data={
            "id": str(target.clip_id),
            "owner_id": str(target.owner_id),
            "kind": target.kind,
            "speech": out.model_dump(mode="json"),
        },
        clip_id=target.clip_id,
    )
    # The owner hears about a finished pitch: its figures, or that it had nothing to
    # analyse (a muted microphone is worth knowing); a broken analysis is ours to fix.
    if target.kind == ClipKind.pitch and out.status in ("ready", "unavailable"):
        cause = Cause(
            org_id=target.org_id,
            actor_id=None,
            clip_id=target.clip_id,
            data=_notification_data(target, out),
        )
        await notify(session, cause, [(target.owner_id, NotificationKind.pitch_analyzed)])
    return True


def speech_event_data(
    clip_id: uuid.UUID, owner_id: uuid.UUID, kind: ClipKind, out: SpeechOut
) -> dict[str, Any]:
    """The ``clip.speech_analyzed`` event's data: the clip and its analysis as the API shows it."""
    return {
        "id": str(clip_id),
        "owner_id": str(owner_id),
        "kind": kind,
        "speech": out.model_dump(mode="json"),
    }


async def announce_update(session: AsyncSession, row: ClipSpeech) -> None:
    """A stored analysis that changed without a new analysis (its talk track was matched
    again): announced like a new one, so subscribers refresh; nobody is notified."""
    clip = await session.get(Clip, row.clip_id)
    if clip is None:
        return
    await events.record(
        session,
        org_id=row.org_id,
        type=event_types.CLIP_SPEECH_ANALYZED,
        data=speech_event_data(clip.id, clip.owner_id, clip.kind, speech_out(clip.id, row)),
        clip_id=clip.id,
    )


def _notification_data(target: Target, out: SpeechOut) -> dict[str, Any]:
    delivery = out.metrics.delivery if out.metrics is not None else None
    words = out.metrics.transcript if out.metrics is not None else None
    return {
        "clip_title": target.title,
        "status": out.status,
        "reason": out.reason,
        "flags": list(out.flags),
        "confidence_class": out.confidence_class,
        "speaking_ratio": delivery.speaking_ratio if delivery is not None else None,
        "longest_pause_ms": delivery.longest_pause_ms if delivery is not None else None,
        "words_per_minute": words.words_per_minute if words is not None else None,
        "fillers_per_minute": words.fillers_per_minute if words is not None else None,
    }


# --- reading -------------------------------------------------------------------------------


def speech_out(clip_id: uuid.UUID, row: ClipSpeech | None) -> SpeechOut:
    if row is None:
        return SpeechOut(
            clip_id=clip_id,
            status="pending",
            reason=None,
            message=None,
            engine=None,
            confidence_class=None,
            language=None,
            duration_ms=None,
            metrics=None,
            flags=[],
            talk_track=None,
            has_transcript=False,
            analyzed_at=None,
        )
    result = SpeechResult.model_validate(row.result) if row.result is not None else None
    return SpeechOut(
        clip_id=clip_id,
        status=row.status.value,
        reason=row.reason,
        message=row.message,
        engine=result.engine if result is not None else _engine(row.engine),
        confidence_class=result.confidence_class if result is not None else None,
        language=result.language if result is not None else None,
        duration_ms=result.duration_ms if result is not None else None,
        metrics=result.metrics if result is not None else None,
        flags=list(result.flags) if result is not None else [],
        talk_track=result.talk_track if result is not None else None,
        has_transcript=row.status == SpeechStatus.ready and row.confidence_class is not None,
        analyzed_at=row.analyzed_at,
    )


def _engine(name: str) -> EngineName | None:
    return cast(EngineName, name) if name in get_args(EngineName) else None


async def _current(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, *, with_transcript: bool
) -> tuple[Clip, ClipSpeech | None]:
    """The visible clip (else 404) and its analysis of the current media version, if any.
    A clip that is never analysed answers 404 ``speech_not_analyzed``."""
    clip = await get_clip(session, principal, clip_id)
    if clip.kind not in ANALYSED_KINDS or clip.status == ClipStatus.failed:
        raise NotFound(
            "This clip has no speech analysis: feedback clips and clips that failed "
            "processing are not analysed.",
            code="speech_not_analyzed",
        )
    row = await SpeechRepository.of(session, principal).of_clip(
        clip.id, with_transcript=with_transcript
    )
    if row is not None and row.media_version != _media_version(clip):
        row = None  # computed from media the clip no longer plays: a new job is on its way
    return clip, row


async def get_speech(session: AsyncSession, principal: Principal, clip_id: uuid.UUID) -> SpeechOut:
    clip, row = await _current(session, principal, clip_id, with_transcript=False)
    return speech_out(clip.id, row)


async def get_transcript(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID
) -> Transcript:
    """The clip's transcript: 409 ``speech_pending`` until it is analysed, 404
    ``no_transcript`` when the analysis made none (engine ``none``, no speech, failed)."""
    _clip, row = await _current(session, principal, clip_id, with_transcript=True)
    if row is None:
        raise Conflict(
            "The clip's speech has not been analysed yet; try again later.",
            code="speech_pending",
        )
    if row.transcript is None:
        raise NotFound(
            f"The clip's speech analysis has no transcript (status {row.status.value}, "
            f"engine {row.engine}).",
            code="no_transcript",
        )
    return Transcript.model_validate(row.transcript)
