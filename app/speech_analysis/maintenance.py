"""Keeping stored analyses current outside the ready hook:

- a stage's talk track edited by an admin: the analyses of that stage's clips are matched
  again against the new phrases, from their stored transcripts (no audio is read, no
  recogniser runs), by a ``rematch_talk_track`` job per edit;
- clips that became ready before speech analysis existed, or that should be analysed again
  with another engine: ``peerpitch analyze-speech`` queues their jobs.
"""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from app.clips.models import Clip, ClipStatus
from app.jobs.kinds import REMATCH_TALK_TRACK
from app.jobs.service import enqueue
from app.speech import SpeechResult, Transcript, match_talk_track
from app.speech_analysis import service
from app.speech_analysis.models import ClipSpeech, SpeechStatus
from app.speech_analysis.repository import SpeechRepository

REMATCH_BATCH = 100


async def enqueue_rematch(session: AsyncSession, org_id: uuid.UUID, stage: str) -> None:
    """The stages' talk-track hook: in the admin's transaction, so the job sees the edit.
    One job per edit (no dedupe: a job already running may have read the old phrases)."""
    await enqueue(
        session,
        REMATCH_TALK_TRACK,
        {"org_id": str(org_id), "stage": stage},
        priority=service.JOB_PRIORITY,
    )


async def rematch_batch(
    session: AsyncSession, org_id: uuid.UUID, stage: str, after: uuid.UUID | None
) -> tuple[int, uuid.UUID | None]:
    """Match up to REMATCH_BATCH transcribed analyses of the stage's clips (ids after
    ``after``) against its phrases now; announce each that changed. Returns how many changed
    and the id to continue after (None when done)."""
    phrases = await service.talk_track_of(session, org_id, stage)
    stmt = (
        SpeechRepository(session, org_id)
        .select()
        .join(Clip, Clip.id == ClipSpeech.clip_id)
        .where(
            Clip.stage == stage,
            Clip.deleted_at.is_(None),
            Clip.status == ClipStatus.ready,
            ClipSpeech.status == SpeechStatus.ready,
            ClipSpeech.confidence_class.is_not(None),  # it has a transcript
        )
        .options(undefer(ClipSpeech.transcript))
        .order_by(ClipSpeech.clip_id)
        .limit(REMATCH_BATCH)
        .with_for_update(of=ClipSpeech)
    )
    if after is not None:
        stmt = stmt.where(ClipSpeech.clip_id > after)
    rows = list(await session.scalars(stmt))
    changed = 0
    for row in rows:
        if row.result is None or row.transcript is None:
            continue
        result = SpeechResult.model_validate(row.result)
        transcript = Transcript.model_validate(row.transcript)
        talk = match_talk_track(transcript, phrases) if phrases else None
        if talk == result.talk_track:
            continue
        row.result = result.model_copy(update={"talk_track": talk}).model_dump(mode="json")
        await session.flush()
        await service.announce_update(session, row)
        changed += 1
    done = len(rows) < REMATCH_BATCH
    return changed, None if done else rows[-1].clip_id


async def enqueue_analyses(session: AsyncSession, *, force: bool, limit: int | None = None) -> int:
    """Queue analyses of ready pitches and exemplars, every organization's: those whose
    current media version has no stored analysis, or (``force``) all of them, to analyse
    them again (another engine, a model now installed). Queued jobs are not doubled."""
    stmt = (
        select(Clip.id, Clip.org_id)
        .outerjoin(ClipSpeech, ClipSpeech.clip_id == Clip.id)
        .where(
            Clip.status == ClipStatus.ready,
            Clip.kind.in_(service.ANALYSED_KINDS),
            Clip.deleted_at.is_(None),
        )
        .order_by(Clip.id)
        .limit(limit)
    )
    if not force:
        stmt = stmt.where(
            or_(
                ClipSpeech.id.is_(None),
                ClipSpeech.media_version != Clip.media["version"].as_string(),
            )
        )
    count = 0
    for clip_id, org_id in (await session.execute(stmt)).all():
        await service.queue_analysis(session, clip_id, org_id, force=force)
        count += 1
    return count
