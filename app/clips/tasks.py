"""Background work on clips: media purge after delete (transcoding is workers/transcode.py)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from app.clips.models import Clip, ClipStatus, media_root
from app.db import utcnow
from app.jobs.models import Job, JobStatus
from app.jobs.service import PermanentJobError
from app.storage.base import Storage
from app.uploads.models import Upload, UploadStatus
from workers.registry import JobContext, TaskContext

log = logging.getLogger("peerpitch.clips")


def _storage(ctx: TaskContext) -> Storage:
    storage: Storage = ctx.services["storage"]
    return storage


async def purge_clip(ctx: JobContext) -> None:
    """Remove every stored object of a deleted clip (idempotent: a rerun deletes nothing)."""
    clip_id = uuid.UUID(ctx.payload["clip_id"])
    storage = _storage(ctx)
    async with ctx.sessionmaker.begin() as session:
        clip = await session.get(Clip, clip_id)
        if clip is None:
            return
        if clip.deleted_at is None:
            raise PermanentJobError("not_deleted", "the clip was not deleted; nothing to purge")
        uploads = (
            await session.scalars(
                select(Upload).where(
                    Upload.clip_id == clip_id, Upload.status == UploadStatus.active
                )
            )
        ).all()
        for upload in uploads:
            await storage.abort_multipart(upload.storage_key, upload.multipart_id)
            upload.status = UploadStatus.aborted
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
        jobs = (
            await session.scalars(
                select(Job).where(
                    Job.kind == "transcode_clip",
                    Job.status.in_((JobStatus.dead, JobStatus.failed)),
                    Job.updated_at >= since,
                )
            )
        ).all()
        clip_ids = [uuid.UUID(job.payload["clip_id"]) for job in jobs]
        if not clip_ids:
            return
        message = "Processing did not finish; upload the video again or contact support."
        # A viewable clip too: its playlists would wait for segments forever.
        failed = (
            await session.execute(
                update(Clip)
                .where(
                    Clip.id.in_(clip_ids),
                    Clip.status.in_((ClipStatus.processing, ClipStatus.viewable)),
                    Clip.deleted_at.is_(None),
                )
                .values(
                    status=ClipStatus.failed,
                    error_code="processing_failed",
                    error_message=message,
                    media=None,
                    updated_at=utcnow(),
                )
                .returning(Clip.org_id, Clip.id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    for org_id, clip_id in failed:  # what it published while it was encoded
        await _storage(ctx).delete_prefix(media_root(org_id, clip_id))
    if failed:
        log.warning("failed %d clips whose transcode job died", len(failed))
