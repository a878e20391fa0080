"""The signed media route that serves the local adapter's files."""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from typing import Any

import anyio
import httpx
import pytest

from app.storage import LocalStorage, Storage
from app.storage.local import sign_media_url
from app.storage.media_router import RangeNotSatisfiable, parse_range
from tests.storage.conftest import SECRET, make_media_app
from tests.storage.helpers import DATA, chunked, path_of


def signed(
    key: str = "v/1/clip.mp4",
    ttl_s: int = 60,
    filename: str | None = None,
    content_type: str | None = None,
) -> str:
    url = sign_media_url(
        "http://testserver", SECRET, key, ttl_s=ttl_s, filename=filename, content_type=content_type
    )
    return path_of(url)


async def test_get_whole_file(client: httpx.AsyncClient) -> None:
    r = await client.get(signed())
    assert r.status_code == 200
    assert r.content == DATA
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["etag"].startswith('"')
    assert r.headers["cache-control"].startswith("private, max-age=")
    assert "content-disposition" not in r.headers


async def test_presigned_url_from_the_adapter(
    client: httpx.AsyncClient, local_storage: LocalStorage
) -> None:
    url = await local_storage.presign_get("v/1/clip.mp4", ttl_s=60, filename="Démo call.mp4")
    r = await client.get(path_of(url))
    assert r.status_code == 200 and r.content == DATA
    assert r.headers["content-disposition"] == (
        "attachment; filename=\"D_mo call.mp4\"; filename*=UTF-8''D%C3%A9mo%20call.mp4"
    )


async def test_head(client: httpx.AsyncClient) -> None:
    r = await client.head(signed())
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["accept-ranges"] == "bytes"
    r = await client.head(signed(), headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.headers["content-length"] == "10"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=1000-", 1000, 1023),
        ("bytes=-24", 1000, 1023),
        ("bytes=1000-5000", 1000, 1023),
        ("bytes=-5000", 0, 1023),
    ],
)
async def test_range(client: httpx.AsyncClient, header: str, start: int, end: int) -> None:
    r = await client.get(signed(), headers={"Range": header})
    assert r.status_code == 206
    assert r.content == DATA[start : end + 1]
    assert r.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert r.headers["content-length"] == str(end - start + 1)


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
async def test_range_not_satisfiable(client: httpx.AsyncClient, header: str) -> None:
    r = await client.get(signed(), headers={"Range": header})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(DATA)}"
    assert r.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=-"])
async def test_unsupported_range_sends_everything(client: httpx.AsyncClient, header: str) -> None:
    r = await client.get(signed(), headers={"Range": header})
    assert r.status_code == 200 and r.content == DATA


async def test_if_range(client: httpx.AsyncClient) -> None:
    etag = (await client.head(signed())).headers["etag"]
    r = await client.get(signed(), headers={"Range": "bytes=0-1", "If-Range": etag})
    assert r.status_code == 206
    r = await client.get(signed(), headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == DATA


async def test_if_none_match(client: httpx.AsyncClient, local_storage: LocalStorage) -> None:
    etag = (await client.get(signed())).headers["etag"]
    r = await client.get(signed(), headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag
    r = await client.get(signed(), headers={"If-None-Match": f'"other", W/{etag}'})
    assert r.status_code == 304

    # Replacing the file changes the ETag (size and mtime). A sleep, not an event: the
    # replacement must get a later mtime on file systems with coarse timestamps.
    time.sleep(0.01)
    await local_storage.put_stream("v/1/clip.mp4", chunked(DATA[::-1]))
    r = await client.get(signed(), headers={"If-None-Match": etag})
    assert r.status_code == 200 and r.content == DATA[::-1]


async def test_bad_signature(client: httpx.AsyncClient) -> None:
    url = signed()
    r = await client.get(url[:-2] + ("00" if not url.endswith("00") else "11"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "invalid_signature"
    # A signature for one key does not open another.
    other = signed().replace("clip.mp4", "other.mp4")
    assert (await client.get(other)).status_code == 403
    # Nor can the signed download name be changed.
    r = await client.get(signed(filename="a.mp4").replace("dl=a.mp4", "dl=b.mp4"))
    assert r.status_code == 403


@pytest.mark.parametrize(
    "query",
    ["", "?exp=99999999999", "?sig=abc", "?exp=soon&sig=abc", "?exp=99999999999&sig=%C3%A9"],
)
async def test_unsigned(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get(f"/v1/media/v/1/clip.mp4{query}")
    assert r.status_code == 403


async def test_expired(client: httpx.AsyncClient) -> None:
    r = await client.get(signed(ttl_s=-1))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "expired_signature"
    assert (await client.head(signed(ttl_s=-1))).status_code == 403


async def test_missing_file(client: httpx.AsyncClient) -> None:
    r = await client.get(signed("v/1/missing.mp4"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_content_types(client: httpx.AsyncClient, local_storage: LocalStorage) -> None:
    cases = {
        "hls/index.m3u8": "application/vnd.apple.mpegurl",
        "hls/seg_1.m4s": "video/iso.segment",
        "thumb.jpg": "image/jpeg",
        "captions.vtt": "text/vtt",
        "blob.xyz": "application/octet-stream",
        "noext": "application/octet-stream",
    }
    for key, expected in cases.items():
        await local_storage.put_stream(key, chunked(b"x"))
        r = await client.get(signed(key))
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] == expected
    r = await client.get(signed("noext", content_type="text/plain"))
    assert r.headers["content-type"].startswith("text/plain")


async def test_large_file_streams(local_storage: LocalStorage) -> None:
    """Sent as ~1 MiB body messages, never one whole-file body (httpx's ASGITransport would
    buffer them, so this speaks ASGI directly)."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    await local_storage.put_stream("big.mp4", chunked(data, 1024 * 1024))
    path, _, query = signed("big.mp4").partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }
    sent: list[MutableMapping[str, Any]] = []
    requested = False
    done = anyio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()  # the client stays connected until the body is complete
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await make_media_app(local_storage)(scope, receive, send)
    assert sent[0]["status"] == 200
    bodies = [m["body"] for m in sent[1:] if m.get("body")]
    assert b"".join(bodies) == data
    assert len(bodies) == 4
    assert max(len(b) for b in bodies) <= 1024 * 1024


async def test_not_served_for_s3(s3_storage: Storage) -> None:
    transport = httpx.ASGITransport(app=make_media_app(s3_storage))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get(signed())).status_code == 404
    transport = httpx.ASGITransport(app=make_media_app(None))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get(signed())).status_code == 404


def test_parse_range() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-", 0)  # nothing in an empty file is satisfiable
    assert parse_range("bytes=2-3", 10) == (2, 3)
    assert parse_range("BYTES=2-", 10) == (2, 9)
    assert parse_range("bytes=junk", 10) is None


async def test_openapi(local_storage: LocalStorage) -> None:
    schema = make_media_app(local_storage).openapi()
    operations = schema["paths"]["/v1/media/{key}"]
    assert set(operations) == {"get", "head"}
    assert operations["get"]["tags"] == ["media"]
    assert operations["get"]["summary"]
