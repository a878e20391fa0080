"""Resumable uploads: one protocol over S3 multipart uploads and the local folder.

This module knows uploads and storage, not clips: the clip's side of an upload (who may
use it, the status it moves the clip to) is app.clips.ingest, which calls in here.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, Forbidden, PayloadTooLarge, Unprocessable
from app.storage.base import PartTooLarge, Storage, StoredPart, UploadNotFound
from app.uploads.models import Upload, UploadStatus
from app.uploads.schemas import CompletedPart, PartTargetOut
from app.uploads.signing import part_signature, verify_part_signature


class UploadTarget(Protocol):
    """What an upload needs to know of the file it receives (a clip satisfies it)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def org_id(self) -> uuid.UUID: ...
    @property
    def source_key(self) -> str: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def content_type(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...


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


def check_size(settings: Settings, size_bytes: int) -> None:
    if size_bytes > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"The file is larger than the limit of {settings.max_upload_bytes} bytes.",
            code="file_too_large",
        )


async def start_upload(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    target: UploadTarget,
) -> Upload:
    """Open a resumable upload of ``target``'s bytes to its storage key."""
    check_size(settings, target.size_bytes)
    part_size, part_count = plan_parts(target.size_bytes, settings.upload_part_size)
    multipart_id = await storage.create_multipart(
        target.source_key, content_type=target.content_type
    )
    upload = Upload(
        org_id=target.org_id,
        clip_id=target.id,
        storage_key=target.source_key,
        multipart_id=multipart_id,
        size_bytes=target.size_bytes,
        part_size=part_size,
        part_count=part_count,
        status=UploadStatus.active,
        expires_at=utcnow() + timedelta(seconds=settings.upload_ttl_s),
    )
    session.add(upload)
    await session.flush()
    return upload


async def open_upload(session: AsyncSession, target_id: uuid.UUID) -> Upload | None:
    """The newest active upload of a file (past its deadline or not), if any."""
    found: Upload | None = await session.scalar(
        select(Upload)
        .where(Upload.clip_id == target_id, Upload.status == UploadStatus.active)
        .order_by(Upload.created_at.desc(), Upload.id.desc())
        .limit(1)
    )
    return found


def ensure_active(upload: Upload) -> None:
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


def check_part_number(upload: Upload, number: int) -> None:
    if not 1 <= number <= upload.part_count:
        raise Unprocessable(
            f"Part numbers run from 1 to {upload.part_count}.",
            code="invalid_part_number",
            details={"part_number": number},
        )


async def part_targets(
    storage: Storage,
    settings: Settings,
    upload: Upload,
    numbers: list[int],
    base_url: str,
) -> tuple[list[PartTargetOut], datetime]:
    ensure_active(upload)
    for number in numbers:
        check_part_number(upload, number)
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


def check_part_url(
    settings: Settings, upload_id: uuid.UUID, number: int, expires: int, signature: str
) -> None:
    if not verify_part_signature(settings.secret_key, upload_id, number, expires, signature):
        raise Forbidden("The part URL is invalid or has expired.", code="invalid_signature")


def check_part_request(upload: Upload, number: int, content_length: int | None) -> None:
    ensure_active(upload)
    check_part_number(upload, number)
    if content_length is not None and content_length > upload.part_size:
        raise PayloadTooLarge(
            f"A part may be at most {upload.part_size} bytes.", code="part_too_large"
        )


async def write_part(
    storage: Storage, upload: Upload, number: int, body: AsyncIterator[bytes]
) -> StoredPart:
    """Store one part (local storage). Runs outside any transaction: it may take minutes."""
    try:
        return await storage.write_part(
            upload.storage_key, upload.multipart_id, number, body, max_bytes=upload.part_size
        )
    except PartTooLarge as exc:
        raise PayloadTooLarge(
            f"A part may be at most {upload.part_size} bytes.", code="part_too_large"
        ) from exc


def check_completion_request(upload: Upload, parts: list[CompletedPart]) -> None:
    ensure_active(upload)
    numbers = [p.number for p in parts]
    if len(numbers) != len(set(numbers)) or any(n > upload.part_count for n in numbers):
        raise Unprocessable(
            f"List parts 1..{upload.part_count} once each, with the ETag each PUT returned.",
            code="invalid_parts",
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


async def assemble(
    session: AsyncSession,
    storage: Storage,
    upload: Upload,
    target: UploadTarget,
    parts: list[CompletedPart],
) -> None:
    """Join the stored parts into the source object, check its declared SHA-256, and mark
    the upload completed. Call outside a transaction's long hold: assembling and hashing
    gigabytes takes seconds."""
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
    if target.sha256:
        digest = await storage.sha256(upload.storage_key)
        if digest != target.sha256:
            # Put the bytes back into parts so the client can resend only what is wrong.
            reopened = await storage.reopen_multipart(
                upload.storage_key, part_size=upload.part_size, content_type=target.content_type
            )
            await session.execute(
                update(Upload)
                .where(Upload.id == upload.id, Upload.status == UploadStatus.active)
                .values(multipart_id=reopened, updated_at=utcnow())
            )
            raise ChecksumMismatch(expected=target.sha256, actual=digest)
    finished = await session.execute(
        update(Upload)
        .where(Upload.id == upload.id, Upload.status == UploadStatus.active)
        .values(status=UploadStatus.completed, completed_at=utcnow(), updated_at=utcnow())
    )
    if finished.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("The upload is already complete.", code="upload_completed")


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


async def abort(storage: Storage, upload: Upload) -> bool:
    """Abort an active upload and free its parts; False if it was not active."""
    if upload.status == UploadStatus.completed:
        raise Conflict("A completed upload cannot be aborted.", code="upload_completed")
    if upload.status != UploadStatus.active:
        return False
    await storage.abort_multipart(upload.storage_key, upload.multipart_id)
    upload.status = UploadStatus.aborted
    return True


async def end_active(
    session: AsyncSession,
    storage: Storage,
    clip_id: uuid.UUID,
    status: UploadStatus = UploadStatus.aborted,
) -> None:
    """Free the parts of every active upload of a file (idempotent): ``aborted`` when the
    file is going away, ``completed`` when a whole-file body superseded the upload."""
    uploads = (
        await session.scalars(
            select(Upload).where(Upload.clip_id == clip_id, Upload.status == UploadStatus.active)
        )
    ).all()
    for upload in uploads:
        await storage.abort_multipart(upload.storage_key, upload.multipart_id)
        upload.status = status
        if status == UploadStatus.completed:
            upload.completed_at = utcnow()


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


def check_whole_body_length(target: UploadTarget, content_length: int | None) -> None:
    if content_length is not None and content_length != target.size_bytes:
        too_big = content_length > target.size_bytes
        error = PayloadTooLarge if too_big else Unprocessable
        raise error(
            f"Content-Length {content_length} differs from the declared {target.size_bytes} bytes.",
            code="size_mismatch",
        )


async def store_whole_body(
    storage: Storage, target: UploadTarget, prefix: str, body: AsyncIterator[bytes]
) -> str:
    """Stream a whole file to a new key under ``prefix``, checking its size and SHA-256;
    returns the key. Each attempt streams to its own key, so a concurrent or retried PUT
    can never overwrite or delete the bytes of the attempt that wins. Runs outside any
    transaction."""
    stream = _HashingLimitedStream(body, target.size_bytes)
    key = f"{prefix}source-{uuid.uuid4().hex}"
    try:
        await storage.put_stream(key, stream.__aiter__(), content_type=target.content_type)
    except BaseException:
        await storage.delete(key)
        raise
    problem: Unprocessable | None = None
    if stream.size != target.size_bytes:
        problem = Unprocessable(
            f"Received {stream.size} bytes; {target.size_bytes} were declared.",
            code="size_mismatch",
        )
    elif target.sha256 and stream.sha256.hexdigest() != target.sha256:
        problem = Unprocessable(
            "The body's SHA-256 does not match the declared one.",
            code="checksum_mismatch",
            details={"expected": target.sha256, "actual": stream.sha256.hexdigest()},
        )
    if problem is not None:
        await storage.delete(key)
        raise problem
    return key


async def expire_stale(
    session: AsyncSession, storage: Storage, *, limit: int = 100
) -> list[Upload]:
    """Abort uploads past their deadline; returns them (now ``expired``)."""
    uploads = (
        await session.scalars(
            select(Upload)
            .where(Upload.status == UploadStatus.active, Upload.expires_at < utcnow())
            .limit(limit)
        )
    ).all()
    for upload in uploads:
        await storage.abort_multipart(upload.storage_key, upload.multipart_id)
        upload.status = UploadStatus.expired
    await session.flush()
    return list(uploads)
