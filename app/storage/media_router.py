"""Serves the local adapter's signed media URLs (`/v1/media/{key}?exp=&sig=`).

The signature is the credential, so no Authorization header: players and <video> tags can
fetch HLS playlists and segments directly. With the S3 adapter, media comes from the bucket
and this route answers 404.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.errors import AppError, Forbidden, NotFound
from app.openapi_meta import errors
from app.storage.base import (
    InvalidKey,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    content_disposition,
    normalize_etag,
)
from app.storage.local import (
    DEFAULT_CONTENT_TYPE,
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


async def _close_after(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    # Release the open file even when the client goes away mid-download.
    try:
        async for chunk in stream:
            yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def _serve(
    request: Request,
    key: str,
    exp: str | None,
    sig: str | None,
    dl: str | None,
    ct: str | None,
    scope: str | None,
    *,
    head: bool,
) -> Response:
    storage: Storage | None = getattr(request.app.state, "storage", None)
    if storage is None or storage.kind != "local":
        raise NotFound()
    if not exp or not sig:
        raise Forbidden("This media link is not signed.", code="invalid_signature")
    try:
        expires = int(exp)
    except ValueError:
        raise Forbidden("This media link is not valid.", code="invalid_signature") from None
    now = time.time()
    if expires < now:
        raise Forbidden("This media link has expired.", code="expired_signature")
    secret_key: str = request.app.state.settings.secret_key
    if scope is not None:
        # One signature for a folder (playlist segments); no response overrides then.
        if (
            dl is not None
            or ct is not None
            or not verify_scope_signature(secret_key, key, scope, expires, sig)
        ):
            raise Forbidden("This media link is not valid.", code="invalid_signature")
    elif not verify_media_signature(
        secret_key, key, expires, sig, filename=dl, content_type=ct, now=now
    ):
        raise Forbidden("This media link is not valid.", code="invalid_signature")

    try:
        info = await storage.stat(key)
    except InvalidKey:
        raise NotFound() from None
    if info is None:
        raise NotFound()

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
    media_type = ct or info.content_type or DEFAULT_CONTENT_TYPE

    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _etag_matches(if_none_match, info.etag):
        return Response(status_code=304, headers=headers)

    span: tuple[int, int] | None = None
    range_header = request.headers.get("range")
    if range_header and _if_range_allows(request.headers.get("if-range"), info):
        span = parse_range(range_header, info.size)
    if span is None:
        # Bounded by the stat's size, so the body always matches Content-Length.
        status, start, end = 200, 0, (info.size - 1 if info.size else None)
        length = info.size
    else:
        status, (start, end) = 206, span
        length = end - start + 1
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(length)

    if head:
        return Response(status_code=status, headers=headers, media_type=media_type)
    try:
        stream = await storage.open_range(key, start, end)
    except ObjectNotFound:  # deleted since the stat
        raise NotFound() from None
    except InvalidRange:  # truncated since the stat
        raise _unsatisfiable(info.size) from None
    return StreamingResponse(
        _close_after(stream), status_code=status, headers=headers, media_type=media_type
    )


KeyPath = Annotated[str, Path(description="The object's key, as in the signed URL")]
Exp = Annotated[str | None, Query(description="Expiry, Unix seconds (signed)")]
Sig = Annotated[str | None, Query(description="HMAC-SHA256 signature (hex)")]
Dl = Annotated[str | None, Query(description="Download file name (signed)")]
Ct = Annotated[str | None, Query(description="Content-Type override (signed)")]
Scope = Annotated[
    str | None,
    Query(description="Key prefix the signature covers (playlist segments; signed)"),
]

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole object", "content": {"application/octet-stream": {}}},
    206: {"description": "The requested byte range", "content": {"application/octet-stream": {}}},
    304: {"description": "Not modified (If-None-Match)"},
    **errors(403, 404, 416, 422),
}
_RESPONSES[403] = {**_RESPONSES[403], "description": "Missing, invalid or expired signature"}
_RESPONSES[404] = {**_RESPONSES[404], "description": "No such object (or storage is not local)"}


@router.get(
    "/v1/media/{key:path}",
    summary="Read a local media object through a signed URL (Range, ETag)",
    response_class=Response,
    responses=_RESPONSES,
)
async def get_media(
    request: Request,
    key: KeyPath,
    exp: Exp = None,
    sig: Sig = None,
    dl: Dl = None,
    ct: Ct = None,
    scope: Scope = None,
) -> Response:
    return await _serve(request, key, exp, sig, dl, ct, scope, head=False)


@router.head(
    "/v1/media/{key:path}",
    summary="Headers of a local media object through a signed URL",
    response_class=Response,
    responses=_RESPONSES,
)
async def head_media(
    request: Request,
    key: KeyPath,
    exp: Exp = None,
    sig: Sig = None,
    dl: Dl = None,
    ct: Ct = None,
    scope: Scope = None,
) -> Response:
    return await _serve(request, key, exp, sig, dl, ct, scope, head=True)
