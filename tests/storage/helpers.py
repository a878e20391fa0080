from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx

from app.storage import Storage, StoredPart


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


async def upload_part(
    storage: Storage,
    http: httpx.AsyncClient,
    key: str,
    multipart_id: str,
    number: int,
    data: bytes,
) -> str:
    """Send one part the way a client would: to the presigned URL (S3) or through the API's
    write_part (local). Returns the ETag."""
    target = await storage.presign_part(key, multipart_id, number, ttl_s=300)
    if target is None:
        stored: StoredPart = await storage.write_part(
            key, multipart_id, number, chunked(data), max_bytes=len(data) + 10
        )
        return stored.etag
    response = await http.request(target.method, target.url, content=data, headers=target.headers)
    assert response.status_code == 200, response.text
    return response.headers["ETag"]


# What the media-route tests serve (the `client` fixture of tests/storage/conftest.py).
DATA = bytes(range(256)) * 4  # 1024 bytes


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
