"""Background work on clips: media purge after delete (transcoding is workers/transcode.py)."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select

from app.clips.models import Clip
from app.jobs.service import PermanentJobError
from app.storage.base import Storage
from app.uploads.models import Upload, UploadStatus
from workers.registry import JobContext

log = logging.getLogger("peerpitch.clips")


def _storage(ctx: JobContext) -> Storage:
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
