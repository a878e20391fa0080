"""Serves the local adapter's signed media URLs (`/v1/media/{key}?exp=&sig=`).

The signature is the credential, so no Authorization header: players and <video> tags can
fetch HLS playlists and segments directly. With the S3 adapter, media comes from the bucket
and this route answers 404.
"""

from __future__ import annotations

import re
import time
from datetime import UTC
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.responses import FileResponse
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from app.errors import AppError, Forbidden, NotFound
from app.openapi_meta import errors
from app.storage.base import (
    CHUNK_SIZE,
    InvalidKey,
    ObjectInfo,
    Storage,
    content_disposition,
    normalize_etag,
)
from app.storage.local import (
    DEFAULT_CONTENT_TYPE,
    LocalFile,
    LocalStorage,
    verify_media_signature,
    verify_scope_signature,
)

router = APIRouter(tags=["media"])

_RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)


class RangeNotSatisfiable(AppError):
    status_code = 416
    code = "range_not_satisfiable"
    message = "The requested range is not satisfiable."


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) of a single `bytes=` range, clamped to size.

    None means "ignore the header and send everything" (malformed, or several ranges, which
    RFC 9110 lets a server decline). Raises RangeNotSatisfiable when it misses the object.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)  # "bytes=-N": the last N bytes
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(int(last), size - 1) if last else size - 1


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match requires."""
    candidates = [c.strip() for c in if_none_match.split(",")]
    return "*" in candidates or any(normalize_etag(c) == etag for c in candidates if c)


def _if_range_allows(if_range: str | None, info: ObjectInfo) -> bool:
    """If-Range: serve the range only while the client's copy is current (strong match)."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"'):
        return normalize_etag(value) == info.etag
    if value.startswith("W/"):
        return False
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return int(date.timestamp()) == int(info.last_modified.timestamp())


KeyPath = Annotated[str, Path(description="The object's key, as in the signed URL")]
Exp = Annotated[str | None, Query(description="Expiry, Unix seconds (signed)")]
Sig = Annotated[str | None, Query(description="HMAC-SHA256 signature (hex)")]
Dl = Annotated[str | None, Query(description="Download file name (signed)")]
Ct = Annotated[str | None, Query(description="Content-Type override (signed)")]
Scope = Annotated[
    str | None,
    Query(description="Key prefix the signature covers (playlist segments; signed)"),
]


class MediaFileResponse(FileResponse):
    """Starlette's FileResponse (single range, HEAD, streaming) serving the byte range our
    layer chose: the request's Range and If-Range headers are replaced by that decision, so
    ranges keep our semantics (see parse_range; malformed or multiple ranges send the whole
    file, an unsatisfiable one is the JSON 416)."""

    chunk_size = CHUNK_SIZE  # ~1 MiB body messages, as the storage port streams

    def __init__(
        self,
        file: LocalFile,
        span: tuple[int, int] | None,
        *,
        headers: dict[str, str],
        media_type: str,
    ) -> None:
        super().__init__(file.path, headers=headers, media_type=media_type, stat_result=file.stat)
        self.span = span

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]
        if self.span is not None:
            headers.append((b"range", f"bytes={self.span[0]}-{self.span[1]}".encode()))
        await super().__call__({**scope, "headers": headers}, receive, send)


def _check_signature(
    secret_key: str,
    key: str,
    exp: str | None,
    sig: str | None,
    dl: str | None,
    ct: str | None,
    scope: str | None,
    now: float,
) -> int:
    """The link's expiry (Unix seconds) when its signature covers this request."""
    if not exp or not sig:
        raise Forbidden("This media link is not signed.", code="invalid_signature")
    invalid = Forbidden("This media link is not valid.", code="invalid_signature")
    try:
        expires = int(exp)
    except ValueError:
        raise invalid from None
    if expires < now:
        raise Forbidden("This media link has expired.", code="expired_signature")
    if scope is not None:
        # One signature for a folder (playlist segments); no response overrides then.
        valid = (
            dl is None
            and ct is None
            and verify_scope_signature(secret_key, key, scope, expires, sig)
        )
    else:
        valid = verify_media_signature(
            secret_key, key, expires, sig, filename=dl, content_type=ct, now=now
        )
    if not valid:
        raise invalid
    return expires


async def serve_media(
    request: Request,
    key: KeyPath,
    exp: Exp = None,
    sig: Sig = None,
    dl: Dl = None,
    ct: Ct = None,
    scope: Scope = None,
) -> Response:
    storage: Storage | None = getattr(request.app.state, "storage", None)
    if not isinstance(storage, LocalStorage):
        raise NotFound()
    now = time.time()
    expires = _check_signature(
        request.app.state.settings.secret_key, key, exp, sig, dl, ct, scope, now
    )
    try:
        file = await storage.locate(key)
    except InvalidKey:
        raise NotFound() from None
    if file is None:
        raise NotFound()

    info = file.info
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{info.etag}"',
        "Last-Modified": format_datetime(info.last_modified.astimezone(UTC), usegmt=True),
        # Shared caches must not outlive the link; the browser may keep it until it expires.
        "Cache-Control": f"private, max-age={max(0, expires - int(now))}",
        "X-Content-Type-Options": "nosniff",
    }
    if dl is not None:
        headers["Content-Disposition"] = content_disposition(dl)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _etag_matches(if_none_match, info.etag):
        return Response(status_code=304, headers=headers)

    span: tuple[int, int] | None = None
    range_header = request.headers.get("range")
    if range_header and _if_range_allows(request.headers.get("if-range"), info):
        span = parse_range(range_header, info.size)
    media_type = ct or info.content_type or DEFAULT_CONTENT_TYPE
    return MediaFileResponse(file, span, headers=headers, media_type=media_type)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole object", "content": {"application/octet-stream": {}}},
    206: {"description": "The requested byte range", "content": {"application/octet-stream": {}}},
    304: {"description": "Not modified (If-None-Match)"},
    **errors(403, 404, 416, 422, codes={403: ["invalid_signature", "expired_signature"]}),
}
_RESPONSES[403] = {**_RESPONSES[403], "description": "Missing, invalid or expired signature"}
_RESPONSES[404] = {**_RESPONSES[404], "description": "No such object (or storage is not local)"}


# One endpoint, two operations (FileResponse answers HEAD without a body).
for method, name, summary in (
    ("GET", "get_media", "Read a local media object through a signed URL (Range, ETag)"),
    ("HEAD", "head_media", "Headers of a local media object through a signed URL"),
):
    router.add_api_route(
        "/v1/media/{key:path}",
        serve_media,
        methods=[method],
        name=name,
        summary=summary,
        response_class=Response,
        responses=_RESPONSES,
    )
