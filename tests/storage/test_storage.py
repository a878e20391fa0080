"""The storage port's contract, run against both adapters."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from app.storage import (
    InvalidKey,
    InvalidPart,
    InvalidRange,
    ObjectNotFound,
    Storage,
    UploadNotFound,
)
from app.storage.local import verify_media_signature
from tests.storage.conftest import BASE_URL, SECRET
from tests.storage.helpers import chunked, md5, read_all, upload_part

MiB = 1024 * 1024
DATA = bytes(range(256)) * 40  # 10240 bytes, every offset recognisable


async def test_put_stat_and_read(storage: Storage) -> None:
    size = await storage.put_stream("v/1/clip.mp4", chunked(DATA, 1000), content_type="video/mp4")
    assert size == len(DATA)

    info = await storage.stat("v/1/clip.mp4")
    assert info is not None
    assert info.size == len(DATA)
    assert info.etag and '"' not in info.etag
    assert info.content_type == "video/mp4"
    assert abs(info.last_modified - datetime.now(UTC)) < timedelta(minutes=5)
    assert await storage.stat("v/1/missing.mp4") is None

    assert await read_all(await storage.open_range("v/1/clip.mp4")) == DATA


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 0, DATA[:1]),
        (5, 9, DATA[5:10]),
        (100, None, DATA[100:]),
        (len(DATA) - 1, None, DATA[-1:]),
        (10, 10**9, DATA[10:]),  # an end past the object is clamped
    ],
)
async def test_open_range(storage: Storage, start: int, end: int | None, expected: bytes) -> None:
    await storage.put_stream("r.bin", chunked(DATA))
    assert await read_all(await storage.open_range("r.bin", start, end)) == expected


async def test_open_range_large_object_is_chunked(storage: Storage) -> None:
    data = os.urandom(3 * MiB + 17)
    await storage.put_stream("big.bin", chunked(data, 256 * 1024))
    chunks = [c async for c in await storage.open_range("big.bin", 1, None)]
    assert b"".join(chunks) == data[1:]
    assert len(chunks) >= 3
    assert max(len(c) for c in chunks) <= MiB


async def test_open_range_errors(storage: Storage) -> None:
    await storage.put_stream("r.bin", chunked(DATA))
    with pytest.raises(ObjectNotFound):
        await storage.open_range("nope.bin")
    with pytest.raises(InvalidRange):
        await storage.open_range("r.bin", len(DATA), None)
    with pytest.raises(InvalidRange):
        await storage.open_range("r.bin", 10, 5)


async def test_open_range_aclose_before_reading(storage: Storage) -> None:
    await storage.put_stream("r.bin", chunked(DATA))
    stream = await storage.open_range("r.bin")
    await stream.aclose()  # type: ignore[attr-defined]
    assert [c async for c in stream] == []


async def test_empty_object(storage: Storage) -> None:
    assert await storage.put_stream("empty.txt", chunked(b"")) == 0
    info = await storage.stat("empty.txt")
    assert info is not None and info.size == 0
    assert await read_all(await storage.open_range("empty.txt")) == b""
    assert await storage.sha256("empty.txt") == hashlib.sha256(b"").hexdigest()


async def test_put_stream_replaces(storage: Storage) -> None:
    await storage.put_stream("a.txt", chunked(b"first version"))
    await storage.put_stream("a.txt", chunked(b"second"))
    assert await read_all(await storage.open_range("a.txt")) == b"second"


async def test_put_stream_larger_than_a_part(storage: Storage) -> None:
    # Over S3's 8 MiB buffer: takes the streamed multipart path there.
    data = os.urandom(9 * MiB + 123)
    assert await storage.put_stream("large.bin", chunked(data, MiB)) == len(data)
    assert await storage.sha256("large.bin") == hashlib.sha256(data).hexdigest()
    info = await storage.stat("large.bin")
    assert info is not None and info.size == len(data)


async def test_put_stream_failure_keeps_nothing(storage: Storage) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(9 * MiB)
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        await storage.put_stream("broken.bin", broken())
    assert await storage.stat("broken.bin") is None


async def test_put_file_and_download_to(storage: Storage, tmp_path: Path) -> None:
    src = tmp_path / "rendition.m3u8"
    src.write_bytes(b"#EXTM3U\n" * 1000)
    await storage.put_file("v/1/hls/index.m3u8", src, content_type="application/vnd.apple.mpegurl")
    info = await storage.stat("v/1/hls/index.m3u8")
    assert info is not None
    assert info.content_type == "application/vnd.apple.mpegurl"

    dest = tmp_path / "copy.m3u8"
    await storage.download_to("v/1/hls/index.m3u8", dest)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(ObjectNotFound):
        await storage.download_to("v/1/hls/missing.m3u8", tmp_path / "x")


async def test_delete(storage: Storage) -> None:
    await storage.put_stream("d/x.txt", chunked(b"x"))
    await storage.delete("d/x.txt")
    assert await storage.stat("d/x.txt") is None
    await storage.delete("d/x.txt")  # missing is fine
    await storage.delete("never/existed.txt")


async def test_delete_prefix(storage: Storage) -> None:
    for key in ["a/1", "a/2", "a/b/3", "ab/4", "c/5"]:
        await storage.put_stream(key, chunked(key.encode()))
    assert await storage.delete_prefix("a/") == 3
    for key in ["a/1", "a/2", "a/b/3"]:
        assert await storage.stat(key) is None
    assert await storage.stat("ab/4") is not None
    assert await storage.delete_prefix("zzz/") == 0
    # Without a slash the prefix matches as a string, as S3 does.
    await storage.put_stream("a/7", chunked(b"7"))
    assert await storage.delete_prefix("a") == 2
    assert await storage.stat("c/5") is not None


async def test_sha256(storage: Storage) -> None:
    await storage.put_stream("h.bin", chunked(DATA))
    assert await storage.sha256("h.bin") == hashlib.sha256(DATA).hexdigest()
    with pytest.raises(ObjectNotFound):
        await storage.sha256("missing.bin")


async def test_presign_get(storage: Storage, http: httpx.AsyncClient) -> None:
    await storage.put_stream("v/2/clip.mp4", chunked(DATA), content_type="video/mp4")
    url = await storage.presign_get("v/2/clip.mp4", ttl_s=60, filename="Pitch ünd demo.mp4")
    if storage.kind == "s3":
        response = await http.get(url)
        assert response.status_code == 200
        assert response.content == DATA
        disposition = response.headers["content-disposition"]
        assert "filename*=UTF-8''Pitch%20%C3%BCnd%20demo.mp4" in disposition
        ranged = await http.get(url, headers={"Range": "bytes=2-4"})
        assert ranged.status_code == 206 and ranged.content == DATA[2:5]
    else:
        # Served by the API's media route (see test_media_router); here: the signature.
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
        assert unquote(parts.path) == "/v1/media/v/2/clip.mp4"
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        exp, sig, dl = int(query["exp"]), query["sig"], query["dl"]
        assert dl == "Pitch ünd demo.mp4"
        assert verify_media_signature(SECRET, "v/2/clip.mp4", exp, sig, filename=dl)
        assert not verify_media_signature(SECRET, "v/2/other.mp4", exp, sig, filename=dl)
        assert not verify_media_signature(SECRET, "v/2/clip.mp4", exp, sig)


@pytest.mark.parametrize(
    "key", ["", "../x", "/etc/passwd", "a/../../x", "a//b", "a\\b", "a\x00b", "a/./b", "a b"]
)
async def test_invalid_keys(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        await storage.put_stream(key, chunked(b"x"))
    with pytest.raises(InvalidKey):
        await storage.stat(key)


# --- multipart ---

PART1 = 5 * MiB  # S3's minimum for every part but the last


async def test_multipart_flow(storage: Storage, http: httpx.AsyncClient) -> None:
    key = "uploads/u1/source.mp4"
    first, second = os.urandom(PART1), os.urandom(1024)
    mid = await storage.create_multipart(key, content_type="video/mp4")
    assert mid

    # The client uploads part 1, then is interrupted; on resume it asks what is stored.
    stale = os.urandom(PART1)
    assert await upload_part(storage, http, key, mid, 1, stale) is not None
    listed = await storage.list_parts(key, mid)
    assert [(p.number, p.size, p.etag) for p in listed] == [(1, PART1, md5(stale))]

    # Re-sending a part replaces it.
    etag1 = await upload_part(storage, http, key, mid, 1, first)
    etag2 = await upload_part(storage, http, key, mid, 2, second)
    listed = await storage.list_parts(key, mid)
    assert [(p.number, p.size, p.etag) for p in listed] == [
        (1, PART1, md5(first)),
        (2, 1024, md5(second)),
    ]

    await storage.complete_multipart(key, mid, [(1, etag1), (2, etag2)])
    info = await storage.stat(key)
    assert info is not None and info.size == PART1 + 1024
    assert await storage.sha256(key) == hashlib.sha256(first + second).hexdigest()
    assert await read_all(await storage.open_range(key, PART1 - 2, PART1 + 1)) == (
        first[-2:] + second[:2]
    )
    with pytest.raises(UploadNotFound):
        await storage.list_parts(key, mid)


async def test_multipart_complete_checks_parts(storage: Storage, http: httpx.AsyncClient) -> None:
    key = "uploads/u2/source.mp4"
    first, second = os.urandom(PART1), os.urandom(10)
    mid = await storage.create_multipart(key, content_type="video/mp4")
    etag1 = await upload_part(storage, http, key, mid, 1, first)
    etag2 = await upload_part(storage, http, key, mid, 2, second)

    with pytest.raises(InvalidPart):
        await storage.complete_multipart(key, mid, [(1, etag1), (2, md5(b"other"))])
    with pytest.raises(InvalidPart):
        await storage.complete_multipart(key, mid, [(2, etag2), (1, etag1)])
    with pytest.raises(InvalidPart):
        await storage.complete_multipart(key, mid, [])
    assert await storage.stat(key) is None

    # Quoted ETags, as browsers read them from the response header, are fine.
    await storage.complete_multipart(key, mid, [(1, f'"{md5(first)}"'), (2, etag2)])
    assert await storage.sha256(key) == hashlib.sha256(first + second).hexdigest()


async def test_multipart_too_small_part(storage: Storage, http: httpx.AsyncClient) -> None:
    key = "uploads/u3/source.mp4"
    mid = await storage.create_multipart(key, content_type=None)
    etag1 = await upload_part(storage, http, key, mid, 1, b"tiny")
    etag2 = await upload_part(storage, http, key, mid, 2, b"tail")
    with pytest.raises(InvalidPart):
        await storage.complete_multipart(key, mid, [(1, etag1), (2, etag2)])
    # A single small part is a valid upload.
    await storage.complete_multipart(key, mid, [(1, etag1)])
    assert await read_all(await storage.open_range(key)) == b"tiny"


async def test_multipart_abort(storage: Storage, http: httpx.AsyncClient) -> None:
    key = "uploads/u4/source.mp4"
    mid = await storage.create_multipart(key, content_type="video/mp4")
    await upload_part(storage, http, key, mid, 1, b"part")
    await storage.abort_multipart(key, mid)
    await storage.abort_multipart(key, mid)  # idempotent
    with pytest.raises(UploadNotFound):
        await storage.list_parts(key, mid)
    assert await storage.stat(key) is None


async def test_part_numbers_are_checked(storage: Storage) -> None:
    mid = await storage.create_multipart("k.bin", content_type=None)
    for number in (0, 10_001):
        if storage.kind == "s3":
            with pytest.raises(InvalidPart):
                await storage.presign_part("k.bin", mid, number, ttl_s=60)
        else:
            with pytest.raises(InvalidPart):
                await storage.write_part("k.bin", mid, number, chunked(b"x"), max_bytes=10)


async def test_reopen_multipart(storage: Storage, http: httpx.AsyncClient) -> None:
    """After a checksum mismatch the object goes back into parts; only a bad one is resent."""
    key = "uploads/u5/source.mp4"
    good1, bad2, good2 = os.urandom(PART1), os.urandom(1024), os.urandom(1024)
    await storage.put_stream(key, chunked(good1 + bad2, MiB), content_type="video/mp4")

    mid = await storage.reopen_multipart(key, part_size=PART1, content_type="video/mp4")
    parts = await storage.list_parts(key, mid)
    assert [(p.number, p.size, p.etag) for p in parts] == [
        (1, PART1, md5(good1)),
        (2, 1024, md5(bad2)),
    ]
    assert await storage.stat(key) is not None  # the object stays until completed again

    etag2 = await upload_part(storage, http, key, mid, 2, good2)
    await storage.complete_multipart(key, mid, [(1, parts[0].etag), (2, etag2)])
    assert await storage.sha256(key) == hashlib.sha256(good1 + good2).hexdigest()


async def test_reopen_small_and_empty_objects(storage: Storage) -> None:
    await storage.put_stream("small.bin", chunked(DATA))  # 10240 bytes
    mid = await storage.reopen_multipart("small.bin", part_size=4096, content_type=None)
    parts = await storage.list_parts("small.bin", mid)
    assert [(p.number, p.size) for p in parts] == [(1, 4096), (2, 4096), (3, 2048)]
    assert parts[2].etag == md5(DATA[8192:])
    await storage.abort_multipart("small.bin", mid)

    await storage.put_stream("empty.bin", chunked(b""))
    mid = await storage.reopen_multipart("empty.bin", part_size=4096, content_type=None)
    assert [(p.number, p.size) for p in await storage.list_parts("empty.bin", mid)] == [(1, 0)]

    with pytest.raises(ObjectNotFound):
        await storage.reopen_multipart("missing.bin", part_size=4096, content_type=None)
