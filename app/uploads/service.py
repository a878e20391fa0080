"""Resumable uploads: one protocol over S3 multipart uploads and the local folder."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import end_read_transaction, utcnow
from app.errors import Conflict, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from app.jobs.service import enqueue
from app.storage.base import PartTooLarge, Storage, StoredPart, UploadNotFound
from app.tenancy import Principal
from app.uploads.models import Upload, UploadStatus
from app.uploads.schemas import CompletedPart, PartTargetOut
from app.uploads.signing import part_signature, verify_part_signature

if TYPE_CHECKING:
    from app.clips.models import Clip

MiB = 1024 * 1024
S3_MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000


def plan_parts(size_bytes: int, preferred_part_size: int) -> tuple[int, int]:
    """Part size and count for a file: the preferred size unless that needs more than
    10,000 parts, in which case the smallest whole-MiB size that fits."""
    part_size = preferred_part_size
    if math.ceil(size_bytes / part_size) > MAX_PARTS:
        part_size = math.ceil(size_bytes / MAX_PARTS / MiB) * MiB
    return part_size, max(1, math.ceil(size_bytes / part_size))


async def start_upload(
    session: AsyncSession, storage: Storage, settings: Settings, clip: Clip
) -> Upload:
    if clip.size_bytes > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"The file is larger than the limit of {settings.max_upload_bytes} bytes.",
            code="file_too_large",
        )
    part_size, part_count = plan_parts(clip.size_bytes, settings.upload_part_size)
    multipart_id = await storage.create_multipart(clip.source_key, content_type=clip.content_type)
    upload = Upload(
        org_id=clip.org_id,
        clip_id=clip.id,
        storage_key=clip.source_key,
        multipart_id=multipart_id,
        size_bytes=clip.size_bytes,
        part_size=part_size,
        part_count=part_count,
        status=UploadStatus.active,
        expires_at=utcnow() + timedelta(seconds=settings.upload_ttl_s),
    )
    session.add(upload)
    await session.flush()
    return upload


async def _load(session: AsyncSession, upload_id: uuid.UUID) -> tuple[Upload, Clip]:
    from app.clips.models import Clip

    row = (
        await session.execute(
            select(Upload, Clip)
            .join(Clip, Clip.id == Upload.clip_id)
            .where(Upload.id == upload_id, Clip.deleted_at.is_(None))
        )
    ).one_or_none()
    if row is None:
        raise NotFound("Upload not found.")
    return row[0], row[1]


async def get_owned_upload(
    session: AsyncSession, principal: Principal, upload_id: uuid.UUID
) -> tuple[Upload, Clip]:
    """Uploads are private to the clip's owner; anything else is not found."""
    upload, clip = await _load(session, upload_id)
    if upload.org_id != principal.org_id or clip.owner_id != principal.id:
        raise NotFound("Upload not found.")
    return upload, clip


def _ensure_active(upload: Upload) -> None:
    if upload.status == UploadStatus.completed:
        raise Conflict("The upload is already complete.", code="upload_completed")
    if upload.status != UploadStatus.active:
        raise Conflict(
            f"The upload is {upload.status.value}.", code=f"upload_{upload.status.value}"
        )
    if upload.expires_at <= utcnow():
        raise Conflict("The upload has expired.", code="upload_expired")


async def stored_parts(storage: Storage, upload: Upload) -> list[StoredPart]:
    if upload.status != UploadStatus.active:
        return []
    try:
        return await storage.list_parts(upload.storage_key, upload.multipart_id)
    except UploadNotFound:
        return []


def _check_part_number(upload: Upload, number: int) -> None:
    if not 1 <= number <= upload.part_count:
        raise Unprocessable(
            f"Part numbers run from 1 to {upload.part_count}.",
            code="invalid_part_number",
            details={"part_number": number},
        )


async def part_targets(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    principal: Principal,
    upload_id: uuid.UUID,
    numbers: list[int],
    base_url: str,
) -> tuple[list[PartTargetOut], datetime]:
    upload, _clip = await get_owned_upload(session, principal, upload_id)
    _ensure_active(upload)
    for number in numbers:
        _check_part_number(upload, number)
    ttl = settings.upload_url_ttl_s
    expires_at = utcnow() + timedelta(seconds=ttl)
    targets: list[PartTargetOut] = []
    for number in numbers:
        target = await storage.presign_part(
            upload.storage_key, upload.multipart_id, number, ttl_s=ttl
        )
        if target is not None:
            targets.append(
                PartTargetOut(
                    number=number, url=target.url, method=target.method, headers=target.headers
                )
            )
            continue
        # Local storage: a signed URL on this API (no Authorization header needed).
        expires = int(expires_at.timestamp())
        signature = part_signature(settings.secret_key, upload.id, number, expires)
        url = (
            f"{base_url.rstrip('/')}/v1/uploads/{upload.id}/parts/{number}"
            f"?expires={expires}&signature={signature}"
        )
        targets.append(PartTargetOut(number=number, url=url, method="PUT", headers={}))
    return targets, expires_at


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
    if not verify_part_signature(settings.secret_key, upload_id, number, expires, signature):
        raise Forbidden("The part URL is invalid or has expired.", code="invalid_signature")
    upload, _clip = await _load(session, upload_id)
    _ensure_active(upload)
    _check_part_number(upload, number)
    if content_length is not None and content_length > upload.part_size:
        raise PayloadTooLarge(
            f"A part may be at most {upload.part_size} bytes.", code="part_too_large"
        )
    await end_read_transaction(session)
    try:
        return await storage.write_part(
            upload.storage_key, upload.multipart_id, number, body, max_bytes=upload.part_size
        )
    except PartTooLarge as exc:
        raise PayloadTooLarge(
            f"A part may be at most {upload.part_size} bytes.", code="part_too_large"
        ) from exc


async def _mark_processing(
    session: AsyncSession, clip: Clip, *, source_key: str | None = None
) -> None:
    """awaiting_upload → processing, guarded: the clip may have been deleted (or its upload
    aborted) while the bytes were streaming outside any transaction."""
    from app.clips.models import Clip, ClipStatus

    result = await session.execute(
        update(Clip)
        .where(
            Clip.id == clip.id,
            Clip.status == ClipStatus.awaiting_upload,
            Clip.deleted_at.is_(None),
        )
        .values(
            status=ClipStatus.processing,
            progress=0.0,
            updated_at=utcnow(),
            **({"source_key": source_key} if source_key else {}),
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("The clip changed during the upload.", code="clip_changed")
    await session.refresh(clip)
    # Same transaction as the status change: a committed upload always has its transcode.
    await enqueue(
        session,
        "transcode_clip",
        {"clip_id": str(clip.id), "org_id": str(clip.org_id)},
        dedupe_key=f"transcode_clip:{clip.id}",
    )


def _completion_problems(
    upload: Upload, stored: list[StoredPart], given: list[CompletedPart]
) -> dict[str, list[int]]:
    by_number = {p.number: p for p in stored}
    listed = {p.number for p in given}
    # A part the client did not list is missing from its point of view too: it must resend.
    missing = [n for n in range(1, upload.part_count + 1) if n not in by_number or n not in listed]
    wrong_size = [
        n
        for n, part in sorted(by_number.items())
        if n <= upload.part_count and part.size != upload.expected_part_size(n)
    ]
    given_etags = {p.number: p.etag.strip('"') for p in given}
    etag_mismatch = [
        n
        for n, part in sorted(by_number.items())
        if n in given_etags and given_etags[n] != part.etag.strip('"')
    ]
    problems = {"missing_parts": missing, "wrong_size_parts": wrong_size}
    if etag_mismatch:
        problems["etag_mismatch_parts"] = etag_mismatch
    return {k: v for k, v in problems.items() if v}


async def complete_upload(
    session: AsyncSession,
    storage: Storage,
    principal: Principal,
    upload_id: uuid.UUID,
    parts: list[CompletedPart],
) -> Clip:
    upload, clip = await get_owned_upload(session, principal, upload_id)
    _ensure_active(upload)
    numbers = [p.number for p in parts]
    if len(numbers) != len(set(numbers)) or any(n > upload.part_count for n in numbers):
        raise Unprocessable(
            f"List parts 1..{upload.part_count} once each, with the ETag each PUT returned.",
            code="invalid_parts",
        )
    # Assembling and hashing gigabytes takes seconds: not inside a transaction.
    await end_read_transaction(session)
    try:
        stored = await storage.list_parts(upload.storage_key, upload.multipart_id)
    except UploadNotFound:
        # A previous completion assembled the object but did not commit: accept it as is.
        info = await storage.stat(upload.storage_key)
        if info is None or info.size != upload.size_bytes:
            raise
        stored = []
    else:
        problems = _completion_problems(upload, stored, parts)
        if problems:
            raise Conflict(
                "Some parts are missing or wrong; upload them again and retry.",
                code="upload_incomplete",
                details=problems,
            )
        await storage.complete_multipart(
            upload.storage_key,
            upload.multipart_id,
            [(p.number, p.etag) for p in sorted(stored, key=lambda p: p.number)],
        )
    if clip.sha256:
        digest = await storage.sha256(upload.storage_key)
        if digest != clip.sha256:
            # Put the bytes back into parts so the client can resend only what is wrong.
            reopened = await storage.reopen_multipart(
                upload.storage_key, part_size=upload.part_size, content_type=clip.content_type
            )
            await session.execute(
                update(Upload)
                .where(Upload.id == upload.id, Upload.status == UploadStatus.active)
                .values(multipart_id=reopened, updated_at=utcnow())
            )
            raise ChecksumMismatch(expected=clip.sha256, actual=digest)
    finished = await session.execute(
        update(Upload)
        .where(Upload.id == upload.id, Upload.status == UploadStatus.active)
        .values(status=UploadStatus.completed, completed_at=utcnow(), updated_at=utcnow())
    )
    if finished.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("The upload is already complete.", code="upload_completed")
    await _mark_processing(session, clip)
    await session.flush()
    return clip


class ChecksumMismatch(Unprocessable):
    code = "checksum_mismatch"
    # The reopened multipart id must be kept, or the upload would not be resumable.
    keep_changes = True

    def __init__(self, *, expected: str, actual: str) -> None:
        super().__init__(
            "The uploaded file's SHA-256 does not match the declared one; the upload is still "
            "open: resend the corrupted parts and complete again.",
            details={"expected": expected, "actual": actual},
        )


async def abort_upload(
    session: AsyncSession, storage: Storage, principal: Principal, upload_id: uuid.UUID
) -> None:
    from app.clips.models import ClipStatus

    upload, clip = await get_owned_upload(session, principal, upload_id)
    if upload.status == UploadStatus.completed:
        raise Conflict("A completed upload cannot be aborted.", code="upload_completed")
    if upload.status == UploadStatus.active:
        await storage.abort_multipart(upload.storage_key, upload.multipart_id)
        upload.status = UploadStatus.aborted
        if clip.status == ClipStatus.awaiting_upload:
            clip.status = ClipStatus.failed
            clip.error_code = "upload_aborted"
            clip.error_message = "The upload was aborted before it completed."
    await session.flush()


class _HashingLimitedStream:
    """Streams the request body through, hashing it and refusing more than ``limit`` bytes."""

    def __init__(self, source: AsyncIterator[bytes], limit: int) -> None:
        self._source = source
        self._limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size > self._limit:
                raise PayloadTooLarge(
                    f"The body is larger than the declared {self._limit} bytes.",
                    code="size_mismatch",
                )
            self.sha256.update(chunk)
            yield chunk


async def put_source(
    session: AsyncSession,
    storage: Storage,
    principal: Principal,
    clip: Clip,
    content_length: int | None,
    body: AsyncIterator[bytes],
) -> Clip:
    from app.clips.access import ensure_can_edit
    from app.clips.models import ClipStatus

    if clip.owner_id != principal.id:
        ensure_can_edit(principal, clip)
    if clip.status != ClipStatus.awaiting_upload:
        raise Conflict("This clip already has its source file.", code="already_uploaded")
    if content_length is not None and content_length != clip.size_bytes:
        too_big = content_length > clip.size_bytes
        error = PayloadTooLarge if too_big else Unprocessable
        raise error(
            f"Content-Length {content_length} differs from the declared {clip.size_bytes} bytes.",
            code="size_mismatch",
        )
    stream = _HashingLimitedStream(body, clip.size_bytes)
    # Each attempt streams to its own key, so a concurrent or retried PUT can never
    # overwrite or delete the bytes of the attempt that wins; the winner's key is recorded.
    source_key = f"{clip.media_prefix}source-{uuid.uuid4().hex}"
    await end_read_transaction(session)
    try:
        await storage.put_stream(source_key, stream.__aiter__(), content_type=clip.content_type)
    except BaseException:
        await storage.delete(source_key)
        raise
    problem: Unprocessable | None = None
    if stream.size != clip.size_bytes:
        problem = Unprocessable(
            f"Received {stream.size} bytes; {clip.size_bytes} were declared.", code="size_mismatch"
        )
    elif clip.sha256 and stream.sha256.hexdigest() != clip.sha256:
        problem = Unprocessable(
            "The body's SHA-256 does not match the declared one.",
            code="checksum_mismatch",
            details={"expected": clip.sha256, "actual": stream.sha256.hexdigest()},
        )
    if problem is not None:
        await storage.delete(source_key)
        raise problem
    uploads = (
        await session.scalars(
            select(Upload).where(Upload.clip_id == clip.id, Upload.status == UploadStatus.active)
        )
    ).all()
    try:
        await _mark_processing(session, clip, source_key=source_key)
    except Conflict:
        await storage.delete(source_key)  # another attempt won, or the clip went away
        raise
    for upload in uploads:
        # The multipart upload is superseded by the whole-file body.
        await storage.abort_multipart(upload.storage_key, upload.multipart_id)
        upload.status = UploadStatus.completed
        upload.completed_at = utcnow()
    await session.flush()
    return clip


async def expire_stale_uploads(session: AsyncSession, storage: Storage, *, limit: int = 100) -> int:
    """Abort uploads past their deadline and fail their clips with ``upload_expired``."""
    from app.clips.models import Clip, ClipStatus

    rows = (
        await session.execute(
            select(Upload, Clip)
            .join(Clip, Clip.id == Upload.clip_id)
            .where(Upload.status == UploadStatus.active, Upload.expires_at < utcnow())
            .limit(limit)
        )
    ).all()
    for upload, clip in rows:
        await storage.abort_multipart(upload.storage_key, upload.multipart_id)
        upload.status = UploadStatus.expired
        if clip.status == ClipStatus.awaiting_upload:
            clip.status = ClipStatus.failed
            clip.error_code = "upload_expired"
            clip.error_message = "The upload was not completed in time."
            clip.updated_at = utcnow()
    await session.flush()
    return len(rows)
