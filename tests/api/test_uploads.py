"""The upload protocol end to end, identical on local storage and on S3 (moto over HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select, update

from app.db import utcnow
from app.jobs.models import Job
from app.uploads.models import Upload
from tests.helpers.api import clip_body, source_key

PART = 64 * 1024  # tiny parts: PEERPITCH_UPLOAD_PART_SIZE may go below S3's 5 MiB in tests


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(make_settings: Any, backend: str, request: pytest.FixtureRequest) -> Any:
    overrides: dict[str, Any] = {"upload_part_size": PART}
    if backend == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        overrides.update(storage="s3", s3_endpoint_url=endpoint, s3_bucket=bucket)
    return make_settings(**overrides)


class Uploader:
    """A client that follows the protocol the way a phone or browser would."""

    def __init__(self, api: httpx.AsyncClient, actor: Any) -> None:
        self.api = api
        self.actor = actor
        # Part URLs point at S3 or at this API; both are fetched without Authorization.
        self.raw = httpx.AsyncClient(timeout=30)

    async def put_part(self, url: str, data: bytes) -> httpx.Response:
        if url.startswith("http://testserver"):
            parts = urlsplit(url)
            return await self.api.put(f"{parts.path}?{parts.query}", content=data)
        return await self.raw.put(url, content=data)

    async def part_urls(self, upload_id: str, numbers: list[int]) -> dict[int, dict[str, Any]]:
        r = await self.api.post(
            f"/v1/uploads/{upload_id}/parts",
            json={"part_numbers": numbers},
            headers=self.actor.headers,
        )
        assert r.status_code == 200, r.text
        return {p["number"]: p for p in r.json()["parts"]}

    async def send(
        self, upload_id: str, data: bytes, numbers: list[int], part_size: int
    ) -> dict[int, str]:
        etags: dict[int, str] = {}
        for number, target in (await self.part_urls(upload_id, numbers)).items():
            chunk = data[(number - 1) * part_size : number * part_size]
            r = await self.put_part(target["url"], chunk)
            assert r.status_code == 200, r.text
            etags[number] = r.headers["etag"]
        return etags

    async def complete(self, upload_id: str, etags: dict[int, str]) -> httpx.Response:
        parts = [{"number": n, "etag": e} for n, e in sorted(etags.items())]
        return await self.api.post(
            f"/v1/uploads/{upload_id}/complete", json={"parts": parts}, headers=self.actor.headers
        )

    async def close(self) -> None:
        await self.raw.aclose()


@pytest.fixture
async def uploader(client: httpx.AsyncClient, make_org: Any) -> AsyncIterator[Uploader]:
    org = await make_org()
    rep = await org.add_user("rep")
    u = Uploader(client, rep)
    yield u
    await u.close()


async def _stored_keys(request: pytest.FixtureRequest, app: Any, prefix: str) -> list[str]:
    """Every object under ``prefix``, listed straight from the backend."""
    settings = app.state.settings
    if settings.storage == "s3":
        client = request.getfixturevalue("s3_client")
        listed = client.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))
    root = settings.media_dir / prefix
    return sorted(str(p.relative_to(settings.media_dir)) for p in root.rglob("*") if p.is_file())


async def _transcode_jobs(app: Any, clip_id: str) -> list[Job]:
    async with app.state.sessionmaker() as session:
        jobs = (await session.scalars(select(Job).where(Job.kind == "transcode_clip"))).all()
    return [j for j in jobs if j.payload["clip_id"] == clip_id]


async def test_interrupted_upload_resumes_and_completes(
    app: Any, client: httpx.AsyncClient, uploader: Uploader, backend: str
) -> None:
    data = os.urandom(PART * 2 + 1000)
    created = await client.post(
        "/v1/clips",
        json=clip_body(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()),
        headers=uploader.actor.headers,
    )
    assert created.status_code == 201, created.text
    upload = created.json()["upload"]
    clip_id = created.json()["clip"]["id"]
    assert (upload["part_size"], upload["part_count"]) == (PART, 3)

    # The client sends part 1, then "crashes".
    await uploader.send(upload["id"], data, [1], PART)

    # After restarting it asks what is stored and sends only the rest.
    r = await client.get(f"/v1/uploads/{upload['id']}", headers=uploader.actor.headers)
    assert r.status_code == 200
    state = r.json()
    assert state["status"] == "active"
    assert [(p["number"], p["size"]) for p in state["uploaded_parts"]] == [(1, PART)]
    etags = {p["number"]: p["etag"] for p in state["uploaded_parts"]}
    etags |= await uploader.send(upload["id"], data, [2, 3], PART)

    assert await _transcode_jobs(app, clip_id) == []
    first = await uploader.complete(upload["id"], etags)
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "processing"
    assert len(await _transcode_jobs(app, clip_id)) == 1

    stored = app.state.storage
    key = f"orgs/{uploader.actor.org_id}/clips/{clip_id}/source"
    assert await stored.sha256(key) == hashlib.sha256(data).hexdigest()

    # Completing again (the app never got the first answer) answers as the first time and
    # changes nothing; the upload reports completion.
    again = await uploader.complete(upload["id"], etags)
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    assert len(await _transcode_jobs(app, clip_id)) == 1
    r = await client.get(f"/v1/uploads/{upload['id']}", headers=uploader.actor.headers)
    assert r.json()["status"] == "completed"


async def test_resent_part_replaces_the_old_one(
    app: Any, client: httpx.AsyncClient, uploader: Uploader
) -> None:
    data = os.urandom(PART + 10)
    created = (
        await client.post(
            "/v1/clips", json=clip_body(size_bytes=len(data)), headers=uploader.actor.headers
        )
    ).json()
    upload_id = created["upload"]["id"]
    await uploader.send(upload_id, b"x" * PART + b"y" * 10, [1, 2], PART)
    etags = await uploader.send(upload_id, data, [1, 2], PART)
    state = (await client.get(f"/v1/uploads/{upload_id}", headers=uploader.actor.headers)).json()
    stored = {p["number"]: p["etag"].strip('"') for p in state["uploaded_parts"]}
    assert stored == {n: e.strip('"') for n, e in etags.items()}
    assert (await uploader.complete(upload_id, etags)).status_code == 202
    key = await source_key(app, created["clip"]["id"])
    assert await app.state.storage.sha256(key) == hashlib.sha256(data).hexdigest()


async def test_local_parts_land_in_place_and_complete_renames(
    app: Any, client: httpx.AsyncClient, uploader: Uploader, backend: str
) -> None:
    """Local storage writes each part at its offset of one file, which `complete` renames
    to the source (no copy); the SHA-256 is still checked, and nothing is left behind."""
    if backend != "local":
        pytest.skip("the local adapter's layout")
    data = os.urandom(PART * 3 + 7)
    created = (
        await client.post(
            "/v1/clips",
            json=clip_body(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()),
            headers=uploader.actor.headers,
        )
    ).json()
    upload_id = created["upload"]["id"]
    etags = await uploader.send(upload_id, data, [4, 2, 3, 1], PART)  # any order
    multipart = app.state.settings.media_dir / ".multipart"
    [folder] = list(multipart.iterdir())
    inode = (folder / "data").stat().st_ino
    r = await uploader.complete(upload_id, etags)
    assert r.status_code == 202, r.text
    source = app.state.settings.media_dir / await source_key(app, created["clip"]["id"])
    assert source.read_bytes() == data
    assert source.stat().st_ino == inode
    assert list(multipart.iterdir()) == []


async def test_complete_with_missing_parts_is_409_and_stays_resumable(
    client: httpx.AsyncClient, uploader: Uploader
) -> None:
    data = os.urandom(PART * 2 + 5)
    created = (
        await client.post(
            "/v1/clips", json=clip_body(size_bytes=len(data)), headers=uploader.actor.headers
        )
    ).json()
    upload_id = created["upload"]["id"]
    etags = await uploader.send(upload_id, data, [1, 3], PART)
    r = await uploader.complete(upload_id, etags)  # the client only lists what it sent
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "upload_incomplete"
    assert err["details"]["missing_parts"] == [2]

    etags |= await uploader.send(upload_id, data, [2], PART)
    assert (await uploader.complete(upload_id, etags)).status_code == 202


async def test_checksum_mismatch_is_422_and_stays_resumable(
    client: httpx.AsyncClient, uploader: Uploader
) -> None:
    data = os.urandom(PART + 100)
    created = (
        await client.post(
            "/v1/clips",
            json=clip_body(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()),
            headers=uploader.actor.headers,
        )
    ).json()
    upload_id = created["upload"]["id"]
    corrupted = data[:PART] + b"\0" * 100  # the last part got mangled in transit
    etags = await uploader.send(upload_id, corrupted, [1, 2], PART)
    r = await uploader.complete(upload_id, etags)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "checksum_mismatch"

    # The stored parts survive: only the bad one is resent.
    state = (await client.get(f"/v1/uploads/{upload_id}", headers=uploader.actor.headers)).json()
    assert state["status"] == "active"
    assert sorted(p["number"] for p in state["uploaded_parts"]) == [1, 2]
    first = {p["number"]: p["etag"] for p in state["uploaded_parts"]}
    etags = {1: first[1]} | await uploader.send(upload_id, data, [2], PART)
    r = await uploader.complete(upload_id, etags)
    assert r.status_code == 202, r.text


async def test_part_errors(
    app: Any, client: httpx.AsyncClient, uploader: Uploader, backend: str, make_org: Any
) -> None:
    data = os.urandom(PART + 1)
    created = (
        await client.post(
            "/v1/clips", json=clip_body(size_bytes=len(data)), headers=uploader.actor.headers
        )
    ).json()
    upload_id = created["upload"]["id"]

    r = await client.post(
        f"/v1/uploads/{upload_id}/parts", json={"part_numbers": [3]}, headers=uploader.actor.headers
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_part_number"

    if backend == "local":
        url = (await uploader.part_urls(upload_id, [1]))[1]["url"]
        r = await uploader.put_part(url, os.urandom(PART + 1))
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "part_too_large"
        forged = url.replace("signature=", "signature=0")
        r = await uploader.put_part(forged, b"x")
        assert r.status_code == 403
        # A correctly signed URL whose time has passed.
        from app.uploads.signing import part_signature

        base = url.split("?")[0]
        sig = part_signature(app.state.settings.secret_key, uuid.UUID(upload_id), 1, 1)
        assert (
            await uploader.put_part(f"{base}?expires=1&signature={sig}", b"x")
        ).status_code == 403
        for malformed in ("", "?expires=soon&signature=x", "?signature=abc"):
            assert (await uploader.put_part(base + malformed, b"x")).status_code == 403
        state = (
            await client.get(f"/v1/uploads/{upload_id}", headers=uploader.actor.headers)
        ).json()
        assert state["uploaded_parts"] == []  # nothing half-written

    # Another org cannot see or touch the upload.
    other = (await make_org("Intruders")).admin
    for method, path, body in (
        ("GET", f"/v1/uploads/{upload_id}", None),
        ("POST", f"/v1/uploads/{upload_id}/parts", {"part_numbers": [1]}),
        ("POST", f"/v1/uploads/{upload_id}/complete", {"parts": [{"number": 1, "etag": "x"}]}),
        ("DELETE", f"/v1/uploads/{upload_id}", None),
    ):
        r = await client.request(method, path, json=body, headers=other.headers)
        assert r.status_code == 404, (method, path)


async def test_abort_frees_parts_and_fails_clip(
    app: Any, client: httpx.AsyncClient, uploader: Uploader
) -> None:
    data = os.urandom(PART + 1)
    created = (
        await client.post(
            "/v1/clips", json=clip_body(size_bytes=len(data)), headers=uploader.actor.headers
        )
    ).json()
    upload_id, clip_id = created["upload"]["id"], created["clip"]["id"]
    await uploader.send(upload_id, data, [1], PART)
    r = await client.delete(f"/v1/uploads/{upload_id}", headers=uploader.actor.headers)
    assert r.status_code == 204
    state = (await client.get(f"/v1/uploads/{upload_id}", headers=uploader.actor.headers)).json()
    assert state["status"] == "aborted"
    assert state["uploaded_parts"] == []
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=uploader.actor.headers)).json()
    assert clip["status"] == "failed"
    assert clip["error"]["code"] == "upload_aborted"
    if app.state.settings.storage == "local":  # the parts' folder is gone
        assert list((app.state.settings.media_dir / ".multipart").iterdir()) == []
    r = await client.post(
        f"/v1/uploads/{upload_id}/parts", json={"part_numbers": [1]}, headers=uploader.actor.headers
    )
    assert r.status_code == 409


async def test_upload_to_deleted_clip_is_404(client: httpx.AsyncClient, uploader: Uploader) -> None:
    created = (
        await client.post(
            "/v1/clips", json=clip_body(size_bytes=10), headers=uploader.actor.headers
        )
    ).json()
    url = (await uploader.part_urls(created["upload"]["id"], [1]))[1]["url"]
    r = await client.delete(f"/v1/clips/{created['clip']['id']}", headers=uploader.actor.headers)
    assert r.status_code == 204
    r = await client.get(f"/v1/uploads/{created['upload']['id']}", headers=uploader.actor.headers)
    assert r.status_code == 404
    r = await client.put(
        f"/v1/clips/{created['clip']['id']}/source",
        content=b"0123456789",
        headers=uploader.actor.headers,
    )
    assert r.status_code == 404
    if "testserver" in url:
        assert (await uploader.put_part(url, b"0123456789")).status_code == 404


async def test_put_source_streams_whole_file(
    app: Any, client: httpx.AsyncClient, uploader: Uploader
) -> None:
    data = os.urandom(300_000)
    created = (
        await client.post(
            "/v1/clips",
            json=clip_body(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()),
            headers=uploader.actor.headers,
        )
    ).json()
    clip_id = created["clip"]["id"]

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = await client.put(
        f"/v1/clips/{clip_id}/source", content=chunks(), headers=uploader.actor.headers
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "processing"
    assert len(await _transcode_jobs(app, clip_id)) == 1
    key = await source_key(app, clip_id)
    assert await app.state.storage.sha256(key) == hashlib.sha256(data).hexdigest()
    r = await client.put(
        f"/v1/clips/{clip_id}/source", content=data, headers=uploader.actor.headers
    )
    assert r.status_code == 409


async def test_put_source_rejects_wrong_size_and_checksum(
    app: Any, client: httpx.AsyncClient, uploader: Uploader, request: pytest.FixtureRequest
) -> None:
    data = os.urandom(5000)
    created = (
        await client.post(
            "/v1/clips",
            json=clip_body(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()),
            headers=uploader.actor.headers,
        )
    ).json()
    clip_id = created["clip"]["id"]
    url = f"/v1/clips/{clip_id}/source"
    h = uploader.actor.headers
    assert (await client.put(url, content=data + b"x", headers=h)).status_code == 413
    r = await client.put(url, content=data[:-1], headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "size_mismatch"
    r = await client.put(url, content=b"\0" + data[1:], headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "checksum_mismatch"
    prefix = f"orgs/{uploader.actor.org_id}/clips/{clip_id}/"
    assert await _stored_keys(request, app, prefix) == []  # nothing half-written
    assert await _transcode_jobs(app, clip_id) == []
    assert (await client.put(url, content=data, headers=h)).status_code == 202


async def _restart(
    client: httpx.AsyncClient, actor: Any, clip_id: str, **body: Any
) -> httpx.Response:
    headers = {**actor.headers, **body.pop("headers", {})}
    return await client.post(f"/v1/clips/{clip_id}/upload", json=body, headers=headers)


async def test_an_aborted_upload_restarts_and_completes(
    app: Any, client: httpx.AsyncClient, uploader: Uploader
) -> None:
    data = os.urandom(PART + 1)
    digest = hashlib.sha256(data).hexdigest()
    created = (
        await client.post("/v1/clips", json=clip_body(size_bytes=3), headers=uploader.actor.headers)
    ).json()
    old_id, clip_id = created["upload"]["id"], created["clip"]["id"]
    assert (
        await client.delete(f"/v1/uploads/{old_id}", headers=uploader.actor.headers)
    ).status_code == 204
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=uploader.actor.headers)).json()
    assert (clip["status"], clip["error"]["code"], clip["upload"]) == (
        "failed",
        "upload_aborted",
        None,
    )

    # A new upload of the right file (another size and a checksum this time), retried once.
    retry = {"headers": {"Idempotency-Key": "restart-1"}}
    r = await _restart(
        client, uploader.actor, clip_id, size_bytes=len(data), sha256=digest, **retry
    )
    assert r.status_code == 201, r.text
    upload = r.json()
    assert set(upload) == {"id", "part_size", "part_count", "expires_at"}
    assert (upload["part_size"], upload["part_count"]) == (PART, 2) and upload["id"] != old_id
    assert r.headers["Location"] == f"/v1/uploads/{upload['id']}"
    retry = {"headers": {"Idempotency-Key": "restart-1"}}
    again = await _restart(
        client, uploader.actor, clip_id, size_bytes=len(data), sha256=digest, **retry
    )
    assert again.status_code == 201 and again.json() == upload
    assert again.headers["Location"] == r.headers["Location"]
    assert again.headers["idempotent-replayed"] == "true"

    clip = (await client.get(f"/v1/clips/{clip_id}", headers=uploader.actor.headers)).json()
    assert (clip["status"], clip["error"], clip["size_bytes"]) == (
        "awaiting_upload",
        None,
        len(data),
    )
    assert clip["upload"] == upload | {"status": "active"}
    old = (await client.get(f"/v1/uploads/{old_id}", headers=uploader.actor.headers)).json()
    assert old["status"] == "aborted"

    etags = await uploader.send(upload["id"], data, [1, 2], PART)
    done = await uploader.complete(upload["id"], etags)
    assert done.status_code == 202, done.text
    assert done.json()["status"] == "processing" and done.json()["upload"] is None
    assert await app.state.storage.sha256(await source_key(app, clip_id)) == digest
    assert len(await _transcode_jobs(app, clip_id)) == 1
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=uploader.actor.headers)).json()
    assert clip["upload"] is None

    # The source is in: no new upload, whatever the key.
    r = await _restart(client, uploader.actor, clip_id, size_bytes=len(data))
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_uploaded"


async def test_an_upload_past_its_deadline_is_replaced(
    app: Any, client: httpx.AsyncClient, uploader: Uploader
) -> None:
    created = (
        await client.post(
            "/v1/clips", json=clip_body(size_bytes=10), headers=uploader.actor.headers
        )
    ).json()
    old_id, clip_id = created["upload"]["id"], created["clip"]["id"]
    # Still open: resume it, or abort it first.
    r = await _restart(client, uploader.actor, clip_id, size_bytes=10)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "upload_in_progress"
    assert r.json()["error"]["details"] == {"upload_id": old_id}

    # Its deadline passed before the expiry task ran: the clip still awaits it.
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == uuid.UUID(old_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=uploader.actor.headers)).json()
    assert clip["status"] == "awaiting_upload"
    assert (clip["upload"]["id"], clip["upload"]["status"]) == (old_id, "expired")

    r = await _restart(
        client,
        uploader.actor,
        clip_id,
        size_bytes=10,
        filename="take2.mov",
        content_type="video/quicktime",
    )
    assert r.status_code == 201, r.text
    new_id = r.json()["id"]
    old = (await client.get(f"/v1/uploads/{old_id}", headers=uploader.actor.headers)).json()
    assert old["status"] == "expired"
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=uploader.actor.headers)).json()
    assert (clip["filename"], clip["content_type"]) == ("take2.mov", "video/quicktime")
    assert (clip["upload"]["id"], clip["upload"]["status"]) == (new_id, "active")
    etags = await uploader.send(new_id, b"0123456789", [1], PART)
    assert (await uploader.complete(new_id, etags)).status_code == 202


async def test_who_may_restart_an_upload_and_with_what(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, coach = await org.add_user("rep"), await org.add_user("coach")
    created = (
        await client.post("/v1/clips", json=clip_body(size_bytes=10), headers=owner.headers)
    ).json()
    clip_id = created["clip"]["id"]
    r = await client.delete(f"/v1/uploads/{created['upload']['id']}", headers=owner.headers)
    assert r.status_code == 204

    # Only the owner uploads: the clip's other viewers may not; another org does not see it.
    for viewer in (coach, org.admin):
        r = await _restart(client, viewer, clip_id, size_bytes=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    other = (await make_org("Elsewhere")).admin
    assert (await _restart(client, other, clip_id, size_bytes=10)).status_code == 404
    assert (await _restart(client, owner, str(uuid.uuid4()), size_bytes=10)).status_code == 404
    for bad in (
        {},
        {"size_bytes": 0},
        {"size_bytes": 10, "sha256": "nope"},
        {"size_bytes": 10, "content_type": "image/png"},
        {"size_bytes": 10, "title": "x"},
    ):
        r = await _restart(client, owner, clip_id, **bad)
        assert r.status_code == 422, bad
        assert r.json()["error"]["code"] == "validation_error"
    r = await _restart(client, owner, clip_id, size_bytes=9 * 1024**3)
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    # The refusals changed nothing.
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=owner.headers)).json()
    assert (clip["status"], clip["error"]["code"]) == ("failed", "upload_aborted")
    assert (await _restart(client, owner, clip_id, size_bytes=10)).status_code == 201


async def test_concurrent_restarts_start_one_upload(
    client: httpx.AsyncClient, uploader: Uploader
) -> None:
    owner = uploader.actor
    created = (
        await client.post("/v1/clips", json=clip_body(size_bytes=10), headers=owner.headers)
    ).json()
    clip_id = created["clip"]["id"]
    r = await client.delete(f"/v1/uploads/{created['upload']['id']}", headers=owner.headers)
    assert r.status_code == 204

    answers = await asyncio.gather(
        *(_restart(client, owner, clip_id, size_bytes=10) for _ in range(3))
    )
    codes = sorted(
        (a.status_code, a.json()["error"]["code"] if a.status_code != 201 else "") for a in answers
    )
    assert codes == [(201, ""), (409, "upload_in_progress"), (409, "upload_in_progress")]
    started = next(a.json()["id"] for a in answers if a.status_code == 201)
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=owner.headers)).json()
    assert clip["upload"]["id"] == started
