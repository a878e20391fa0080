"""Background work on clips: media purge after delete, clips whose transcode died, and
uploads that never completed (transcoding itself is app.clips.transcode)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select

from app.clips import ingest, lifecycle
from app.clips.models import Clip, media_root
from app.db import utcnow
from app.jobs.kinds import TRANSCODE_CLIP
from app.jobs.models import Job, JobStatus
from app.jobs.registry import JobContext, TaskContext
from app.jobs.service import PermanentJobError
from app.uploads import service as uploads

log = logging.getLogger("peerpitch.clips")


async def purge_clip(ctx: JobContext) -> None:
    """Remove every stored object of a deleted clip (idempotent: a rerun deletes nothing)."""
    clip_id = uuid.UUID(ctx.payload["clip_id"])
    storage = ctx.services.storage
    async with ctx.sessionmaker.begin() as session:
        clip = await session.get(Clip, clip_id)
        if clip is None:
            return
        if clip.deleted_at is None:
            raise PermanentJobError("not_deleted", "the clip was not deleted; nothing to purge")
        await uploads.end_active(session, storage, clip_id)
        prefix = clip.media_prefix
    removed = await storage.delete_prefix(prefix)
    log.info("purged clip %s: %d objects", clip_id, removed)


ABANDONED_LOOKBACK = timedelta(days=2)


async def fail_abandoned_transcodes(ctx: TaskContext) -> None:
    """Periodic: a transcode job that died without its handler recording the failure (its
    worker was killed on the last attempt, or its lease ran out) must not leave the clip
    ``processing`` forever. Idempotent; runs in every worker."""
    since = utcnow() - ABANDONED_LOOKBACK
    async with ctx.sessionmaker.begin() as session:
        payloads = (
            await session.scalars(
                select(Job.payload).where(
                    Job.kind == TRANSCODE_CLIP.name,
                    Job.status.in_((JobStatus.dead, JobStatus.failed)),
                    Job.updated_at >= since,
                )
            )
        ).all()
        # A viewable clip too: its playlists would wait for segments forever.
        failed = await lifecycle.processing_failed(
            session,
            [uuid.UUID(payload["clip_id"]) for payload in payloads],
            "processing_failed",
            "Processing did not finish; upload the video again or contact support.",
        )
    for org_id, clip_id in failed:  # what it published while it was encoded
        await ctx.services.storage.delete_prefix(media_root(org_id, clip_id))
    if failed:
        log.warning("failed %d clips whose transcode job died", len(failed))


async def expire_uploads(ctx: TaskContext) -> None:
    """Periodic: abort uploads past PEERPITCH_UPLOAD_TTL_S; their clips fail."""
    async with ctx.sessionmaker.begin() as session:
        expired = await ingest.expire_uploads(session, ctx.services.storage)
    if expired:
        log.info("expired %d uploads", expired)
