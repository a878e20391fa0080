"""A clip's source file arriving: who may use an upload, and what the clip becomes when the
bytes are in (or never arrive). The transfer itself is app.uploads; the status change is
app.clips.lifecycle."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from app.clips import lifecycle
from app.clips.access import ensure_can_edit
from app.clips.models import Clip, ClipStatus
from app.clips.repository import ClipRepository
from app.clips.schemas import UploadRestart
from app.config import Settings
from app.db import end_read_transaction, utcnow
from app.errors import Conflict, Forbidden, NotFound
from app.events import service as events
from app.events import types as event_types
from app.notifications.models import NotificationKind
from app.notifications.service import Cause, notify
from app.storage.base import Storage, StoredPart
from app.tenancy import Principal
from app.uploads import service as uploads
from app.uploads.models import Upload, UploadStatus
from app.uploads.schemas import CompletedPart, PartTargetOut, UploadOut


async def _load(
    session: AsyncSession, upload_id: uuid.UUID, *, fresh: bool = False
) -> tuple[Upload, Clip]:
    """The upload and its live clip, with the clip's owner (for the clip's response)."""
    stmt = (
        select(Upload, Clip)
        .join(Clip, Clip.id == Upload.clip_id)
        .where(Upload.id == upload_id, Clip.deleted_at.is_(None))
        .options(joinedload(Clip.owner, innerjoin=True))
    )
    if fresh:
        stmt = stmt.execution_options(populate_existing=True)
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound("Upload not found.")
    return row[0], row[1]


async def owned_upload(
    session: AsyncSession, principal: Principal, upload_id: uuid.UUID, *, fresh: bool = False
) -> tuple[Upload, Clip]:
    """Uploads are private to the clip's owner; anything else is not found."""
    upload, clip = await _load(session, upload_id, fresh=fresh)
    if upload.org_id != principal.org_id or clip.owner_id != principal.id:
        raise NotFound("Upload not found.")
    return upload, clip


async def stored_parts(session: AsyncSession, storage: Storage, upload: Upload) -> list[StoredPart]:
    await end_read_transaction(session)  # listing parts is a storage round trip
    return await uploads.stored_parts(storage, upload)


async def part_urls(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    principal: Principal,
    upload_id: uuid.UUID,
    numbers: list[int],
    base_url: str,
) -> tuple[list[PartTargetOut], datetime]:
    upload, _clip = await owned_upload(session, principal, upload_id)
    return await uploads.part_targets(storage, settings, upload, numbers, base_url)


async def receive_local_part(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    upload_id: uuid.UUID,
    number: int,
    expires: int,
    signature: str,
    content_length: int | None,
    body: AsyncIterator[bytes],
) -> StoredPart:
    """A part PUT to a signed URL (local storage): the signature is the authorization."""
    uploads.check_part_url(settings, upload_id, number, expires, signature)
    upload, _clip = await _load(session, upload_id)
    uploads.check_part_request(upload, number, content_length)
    await end_read_transaction(session)
    return await uploads.write_part(storage, upload, number, body)


async def complete_upload(
    session: AsyncSession,
    storage: Storage,
    principal: Principal,
    upload_id: uuid.UUID,
    parts: list[CompletedPart],
) -> Clip:
    """Assemble the parts; the clip moves to processing. Repeating it on a completed upload
    (a retry whose first answer was lost) answers as the first time: the clip, now."""
    upload, clip = await owned_upload(session, principal, upload_id)
    if upload.status == UploadStatus.completed:
        return clip
    uploads.check_completion_request(upload, parts)
    # Assembling and hashing gigabytes takes seconds: not inside a transaction.
    await end_read_transaction(session)
    try:
        await uploads.assemble(session, storage, upload, clip, parts)
    except Conflict as exc:
        if exc.code != "upload_completed":
            raise
        # The upload ended meanwhile: a concurrent completion won (answer as it did), or an
        # abort or the expiry did (their conflict).
        upload, clip = await owned_upload(session, principal, upload_id, fresh=True)
        if upload.status != UploadStatus.completed:
            uploads.ensure_active(upload)
            raise
        return clip
    await lifecycle.upload_completed(session, clip)
    await session.flush()
    return clip


async def abort_upload(
    session: AsyncSession, storage: Storage, principal: Principal, upload_id: uuid.UUID
) -> None:
    upload, clip = await owned_upload(session, principal, upload_id)
    if await uploads.abort(storage, upload):
        await session.flush()  # the clip fails only once no upload of it is open
        await lifecycle.upload_ended(
            session, clip.id, "upload_aborted", "The upload was aborted before it completed."
        )
    await session.flush()


async def put_source(
    session: AsyncSession,
    storage: Storage,
    principal: Principal,
    clip: Clip,
    content_length: int | None,
    body: AsyncIterator[bytes],
) -> Clip:
    """The whole source file as one request body (small files, scripts)."""
    if clip.owner_id != principal.id:
        ensure_can_edit(principal, clip)
    if clip.status != ClipStatus.awaiting_upload:
        raise Conflict("This clip already has its source file.", code="already_uploaded")
    uploads.check_whole_body_length(clip, content_length)
    await end_read_transaction(session)
    source_key = await uploads.store_whole_body(storage, clip, clip.media_prefix, body)
    try:
        await lifecycle.upload_completed(session, clip, source_key=source_key)
    except Conflict:
        await storage.delete(source_key)  # another attempt won, or the clip went away
        raise
    await uploads.end_active(session, storage, clip.id, UploadStatus.completed)
    await session.flush()
    return clip


async def resumable_upload(
    session: AsyncSession, principal: Principal, clip: Clip
) -> Upload | None:
    """The upload a clip awaits, for its owner (the only one who may send it), so an app that
    lost the upload's id can resume; None for anyone else or once the source is in."""
    if clip.owner_id != principal.id or clip.status != ClipStatus.awaiting_upload:
        return None
    return await uploads.open_upload(session, clip.id)


def _may_restart(clip: Clip) -> bool:
    """The source never arrived: still awaited, or its upload was aborted or expired."""
    if clip.status == ClipStatus.awaiting_upload:
        return True
    return clip.status == ClipStatus.failed and clip.error_code in lifecycle.UPLOAD_ENDED


async def restart_upload(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    principal: Principal,
    clip_id: uuid.UUID,
    data: UploadRestart,
) -> Upload:
    """A new resumable upload for a clip whose upload was aborted or expired (or is past
    its deadline, not yet expired by the periodic task); the clip awaits its source again.
    Refused while the clip's upload is still open, and once the source has arrived."""
    clip = await ClipRepository.of(session, principal).get_visible(principal, clip_id)
    if clip.owner_id != principal.id:
        raise Forbidden("Only the clip's owner uploads its source.")
    if not _may_restart(clip):
        raise Conflict("This clip already has its source file.", code="already_uploaded")
    uploads.check_size(settings, data.size_bytes)
    # The guarded UPDATE also makes two restarts of one clip take turns (row lock).
    if not await lifecycle.upload_restarted(session, clip):
        raise Conflict("The clip changed meanwhile; fetch it and retry.", code="clip_changed")
    current = await uploads.open_upload(session, clip.id)
    if current is not None and current.expires_at > utcnow():
        raise Conflict(
            "The clip's upload is still open: resume it, or abort it to start over.",
            code="upload_in_progress",
            details={"upload_id": str(current.id)},
        )
    await uploads.end_active(session, storage, clip.id, UploadStatus.expired)
    clip.size_bytes = data.size_bytes
    clip.sha256 = data.sha256.lower() if data.sha256 else None
    if data.filename is not None:
        clip.filename = data.filename
    if data.content_type is not None:
        clip.content_type = data.content_type
    return await uploads.start_upload(session, storage, settings, clip)


async def expire_uploads(session: AsyncSession, storage: Storage) -> int:
    """Abort uploads past PEERPITCH_UPLOAD_TTL_S and fail the clips still waiting for them;
    each expiry is an ``upload.expired`` event and a notification to the clip's owner (who
    may start a new upload on the same clip)."""
    expired = await uploads.expire_stale(session, storage)
    owners = dict(
        (
            await session.execute(
                select(Clip.id, Clip.owner_id).where(Clip.id.in_([u.clip_id for u in expired]))
            )
        ).all()
    )
    for upload in expired:
        await events.record(
            session,
            org_id=upload.org_id,
            type=event_types.UPLOAD_EXPIRED,
            data=UploadOut(
                id=upload.id,
                clip_id=upload.clip_id,
                status=upload.status,
                size_bytes=upload.size_bytes,
                part_size=upload.part_size,
                part_count=upload.part_count,
                uploaded_parts=[],
                expires_at=upload.expires_at,
            ).model_dump(mode="json"),
            clip_id=upload.clip_id,
        )
        if upload.clip_id in owners:
            cause = Cause(
                org_id=upload.org_id,
                actor_id=None,
                clip_id=upload.clip_id,
                data={"upload_id": str(upload.id), "expires_at": upload.expires_at.isoformat()},
            )
            await notify(
                session, cause, [(owners[upload.clip_id], NotificationKind.upload_expired)]
            )
        await lifecycle.upload_ended(
            session, upload.clip_id, "upload_expired", "The upload was not completed in time."
        )
    return len(expired)
