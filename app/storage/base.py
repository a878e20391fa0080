"""The storage port: one async interface over a local folder or an S3 bucket.

Adapters run every blocking call (boto3, file I/O) in a worker thread, so the event loop
never waits on disk or network.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import quote

import anyio.to_thread

from app.errors import AppError

CHUNK_SIZE = 1024 * 1024
# S3's limits, applied by both adapters so uploads behave the same everywhere.
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


class StorageError(AppError):
    """A storage operation failed (unreachable backend, I/O error, ...): 503, retry later.

    Storage errors are AppErrors, so an error that escapes a service renders like any other.
    The detail (a path, an S3 message) is ``str(exc)``, for logs; this class shows clients
    only its generic message. The subclasses below are the caller's mistakes and show it.
    """

    status_code = 503
    code = "storage_unavailable"
    message = "Media storage is unavailable; retry later."
    headers: dict[str, str] | None = {"Retry-After": "5"}
    detail_is_public = False

    def __init__(self, detail: str = "") -> None:
        super().__init__((detail or self.code) if self.detail_is_public else None)
        self.args = (detail,) if detail else ()


class StorageRequestError(StorageError):
    """The storage refused the request itself: the detail is the message."""

    headers = None
    detail_is_public = True


class ObjectNotFound(StorageRequestError):
    """The object does not exist."""

    status_code = 404
    code = "not_found"


class InvalidKey(StorageRequestError, ValueError):
    """A key, prefix or multipart id that the storage refuses (escape attempt, bad characters)."""

    status_code = 422
    code = "invalid_key"


class InvalidRange(StorageRequestError, ValueError):
    """The requested byte range does not overlap the object."""

    status_code = 416
    code = "range_not_satisfiable"


class UploadNotFound(StorageRequestError):
    """The multipart upload does not exist (never created, completed or aborted)."""

    status_code = 409
    code = "upload_not_active"


class InvalidPart(StorageRequestError, ValueError):
    """A part number is out of range, or the parts given to complete do not match the stored
    ones (missing, wrong ETag, out of order, too small)."""

    status_code = 409
    code = "invalid_part"


class PartTooLarge(StorageRequestError):
    """More bytes arrived for a part than allowed."""

    status_code = 413
    code = "part_too_large"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        super().__init__(f"the part is larger than {max_bytes} bytes")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    etag: str  # without quotes
    content_type: str | None
    last_modified: datetime  # timezone-aware (UTC)


@dataclass(frozen=True, slots=True)
class PartTarget:
    """Where a client sends one part's bytes."""

    url: str
    method: str = "PUT"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredPart:
    number: int
    size: int
    etag: str  # md5 hex, without quotes, as S3 reports it


class Storage(Protocol):
    """See DESIGN.md §2. Keys are relative POSIX paths of `[A-Za-z0-9._-]` segments."""

    @property
    def kind(self) -> Literal["local", "s3"]: ...

    async def check(self) -> None:
        """Raise StorageError when the backend is unreachable or unusable."""

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str | None = None
    ) -> int:
        """Store the stream under key in constant memory; return the number of bytes."""
        ...

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        """Upload a local file (rendition outputs)."""

    async def download_to(self, key: str, path: Path) -> None:
        """Stream the object into path. Raises ObjectNotFound."""

    async def stat(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""
        ...

    async def open_range(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Open bytes start..end (inclusive; None = to the end) as ~1 MiB chunks.

        Errors (ObjectNotFound, InvalidRange) raise here, before any byte is read; an end
        past the object is clamped. The iterator holds a file or connection: exhaust it or
        call its `aclose()`.
        """
        ...

    async def delete(self, key: str) -> None:
        """Delete the object; a missing object is fine."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with prefix; return how many."""
        ...

    async def presign_get(
        self,
        key: str,
        *,
        ttl_s: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """A URL that reads the object without credentials until ttl_s passes."""
        ...

    async def create_multipart(self, key: str, *, content_type: str | None) -> str:
        """Start a multipart upload and return its id."""
        ...

    async def presign_part(
        self, key: str, multipart_id: str, part_number: int, *, ttl_s: int
    ) -> PartTarget | None:
        """Where the client PUTs a part; None when the API itself receives parts (local)."""
        ...

    async def write_part(
        self,
        key: str,
        multipart_id: str,
        part_number: int,
        chunks: AsyncIterator[bytes],
        *,
        max_bytes: int,
    ) -> StoredPart:
        """Store one part received by the API (local only), replacing a previous copy.

        Raises PartTooLarge as soon as more than max_bytes arrive, keeping no partial file.
        """
        ...

    async def list_parts(self, key: str, multipart_id: str) -> list[StoredPart]:
        """The parts stored so far, by number. Raises UploadNotFound."""
        ...

    async def complete_multipart(
        self, key: str, multipart_id: str, parts: list[tuple[int, str]]
    ) -> None:
        """Assemble (part number, ETag) pairs, ascending, into the object."""

    async def abort_multipart(self, key: str, multipart_id: str) -> None:
        """Drop the upload and its parts; an unknown upload is fine."""

    async def reopen_multipart(self, key: str, *, part_size: int, content_type: str | None) -> str:
        """Start a new multipart upload holding the stored object cut into part_size parts
        (the object itself stays), so a client can resend only the parts that are wrong and
        complete again. Returns the new id. Raises ObjectNotFound."""
        ...

    async def sha256(self, key: str) -> str:
        """Hex SHA-256 of the stored object, streamed. Raises ObjectNotFound."""
        ...


def validate_key(key: str) -> str:
    """Return key if it is a safe relative POSIX path, else raise InvalidKey.

    Segments starting with a dot are refused too: they are reserved for temp files and the
    local adapter's `.multipart` folder.
    """
    if not isinstance(key, str) or not key or len(key) > 1024:
        raise InvalidKey("a key must be a non-empty string of at most 1024 characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment.startswith("."):
            raise InvalidKey(f"invalid key {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Like validate_key, but a trailing slash is allowed (a "folder")."""
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def validate_part_number(part_number: int) -> int:
    if not isinstance(part_number, int) or not 1 <= part_number <= MAX_PART_NUMBER:
        raise InvalidPart(f"part numbers go from 1 to {MAX_PART_NUMBER}")
    return part_number


def validate_completion(parts: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Parts given to complete: at least one, numbers valid and strictly ascending."""
    if not parts:
        raise InvalidPart("at least one part is required")
    numbers = [validate_part_number(number) for number, _ in parts]
    if any(a >= b for a, b in itertools.pairwise(numbers)):
        raise InvalidPart("parts must be listed in ascending order, each once")
    return parts


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 one (RFC 6266)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return (
        f'attachment; filename="{fallback or "download"}"; '
        f"filename*=UTF-8''{quote(filename, safe='')}"
    )


def normalize_etag(etag: str) -> str:
    """ETags compare without quotes or a weak prefix, case-insensitively."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"').lower()


def check_range(size: int, start: int, end: int | None) -> tuple[int, int] | None:
    """Clamp start..end (inclusive) to an object of size bytes.

    Returns None when the whole object is asked for (so empty objects read fine) and raises
    InvalidRange when the range misses the object, as S3 does.
    """
    if start < 0 or (end is not None and end < start):
        raise InvalidRange(f"invalid range {start}-{end}")
    if start == 0 and (end is None or end >= size - 1):
        return None
    if start >= size:
        raise InvalidRange(f"range start {start} is past the object's {size} bytes")
    return start, size - 1 if end is None else min(end, size - 1)


class ChunkStream:
    """Async iterator over a blocking reader; each read runs in a worker thread.

    A class rather than an async generator so the resource is opened eagerly (errors raise
    from open_range itself) and `aclose()` releases it even if iteration never started.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        close: Callable[[], None],
        *,
        length: int | None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._read = read
        self._close = close
        self._remaining = length
        self._chunk_size = chunk_size
        self._closed = False

    def __aiter__(self) -> ChunkStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed or self._remaining == 0:
            await self.aclose()
            raise StopAsyncIteration
        size = self._chunk_size
        if self._remaining is not None:
            size = min(size, self._remaining)
        try:
            data = await anyio.to_thread.run_sync(self._read, size)
        except BaseException:
            await self.aclose()
            raise
        if not data:
            await self.aclose()
            raise StopAsyncIteration
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close)
