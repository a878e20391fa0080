"""Clip and upload background work, run by a real Worker with the product's handlers."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.clips.tasks import expire_uploads
from app.db import utcnow
from app.jobs.models import Job, JobStatus
from app.uploads.models import Upload
from tests.conftest import running_worker, task_context
from tests.helpers.api import clip_body, source_key
from tests.helpers.waiting import eventually
from workers.runtime import Worker


@pytest.fixture
async def worker(app: Any) -> AsyncIterator[Worker]:
    async with running_worker(app) as w:
        yield w


async def wait_for_job(app: Any, kind: str, clip_id: str, timeout: float = 20) -> Job:
    """The clip's job of ``kind`` once it has ended (a database row: nothing to await)."""

    async def ended() -> list[Job]:
        async with app.state.sessionmaker() as session:
            jobs = (await session.scalars(select(Job).where(Job.kind == kind))).all()
        return [
            j
            for j in jobs
            if j.payload["clip_id"] == clip_id
            and j.status in (JobStatus.succeeded, JobStatus.failed, JobStatus.dead)
        ]

    done = await eventually(ended, timeout=timeout, what=f"{kind} of clip {clip_id} to end")
    return done[0]


async def test_upload_then_delete_purges_all_media(
    app: Any, client: httpx.AsyncClient, make_org: Any, worker: Worker
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    data = os.urandom(2048)
    created = (
        await client.post("/v1/clips", json=clip_body(size_bytes=len(data)), headers=rep.headers)
    ).json()
    clip_id = created["clip"]["id"]
    r = await client.put(f"/v1/clips/{clip_id}/source", content=data, headers=rep.headers)
    assert r.status_code == 202

    # Random bytes are not media: a permanent failure, never retried.
    job = await wait_for_job(app, "transcode_clip", clip_id)
    assert job.status == JobStatus.failed
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert clip["status"] == "failed"
    assert clip["error"]["code"] == "invalid_media"

    storage = app.state.storage
    prefix = f"orgs/{org.org_id}/clips/{clip_id}/"
    await storage.put_stream(prefix + "hls/extra.m4s", _chunks(b"rendition"))
    key = await source_key(app, clip_id)
    assert key.startswith(prefix)
    assert await storage.stat(key) is not None

    assert (await client.delete(f"/v1/clips/{clip_id}", headers=rep.headers)).status_code == 204
    job = await wait_for_job(app, "purge_clip", clip_id)
    assert job.status == JobStatus.succeeded
    assert await storage.stat(key) is None
    assert await storage.stat(prefix + "hls/extra.m4s") is None


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_transcode_of_missing_source_fails_the_clip(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    data = os.urandom(100)
    created = (
        await client.post("/v1/clips", json=clip_body(size_bytes=len(data)), headers=rep.headers)
    ).json()
    clip_id = created["clip"]["id"]
    assert (
        await client.put(f"/v1/clips/{clip_id}/source", content=data, headers=rep.headers)
    ).status_code == 202
    await app.state.storage.delete(await source_key(app, clip_id))
    async with running_worker(app):  # started only now: the job must find the source gone
        await wait_for_job(app, "transcode_clip", clip_id)
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert clip["status"] == "failed"
    assert clip["error"]["code"] == "source_missing"


async def test_stale_uploads_expire(app: Any, client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    stale = (await client.post("/v1/clips", json=clip_body(), headers=rep.headers)).json()
    fresh = (await client.post("/v1/clips", json=clip_body(), headers=rep.headers)).json()
    r = await client.post(
        f"/v1/uploads/{stale['upload']['id']}/parts",
        json={"part_numbers": [1]},
        headers=rep.headers,
    )
    url = r.json()["parts"][0]["url"].replace("http://testserver", "")
    assert (await client.put(url, content=b"x" * 1000)).status_code == 200

    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == uuid.UUID(stale["upload"]["id"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    ctx = task_context(app)
    await expire_uploads(ctx)
    await expire_uploads(ctx)  # idempotent

    clip = (await client.get(f"/v1/clips/{stale['clip']['id']}", headers=rep.headers)).json()
    assert clip["status"] == "failed"
    assert clip["error"]["code"] == "upload_expired"
    state = (await client.get(f"/v1/uploads/{stale['upload']['id']}", headers=rep.headers)).json()
    assert state["status"] == "expired"
    assert state["uploaded_parts"] == []
    assert (await client.put(url, content=b"x" * 1000)).status_code == 409
    other = (await client.get(f"/v1/clips/{fresh['clip']['id']}", headers=rep.headers)).json()
    assert other["status"] == "awaiting_upload"
    # Once each: an upload.expired event, the clip's failure, and a word to its owner.
    r = await client.get(
        "/v1/events", params={"types": "upload.*,clip.*"}, headers=org.admin.headers
    )
    events = r.json()["items"]
    assert [e["type"] for e in events] == ["upload.expired", "clip.failed"]
    assert events[0]["data"]["id"] == stale["upload"]["id"]
    assert events[0]["data"]["clip_id"] == stale["clip"]["id"]
    assert events[0]["data"]["status"] == "expired"
    assert events[1]["data"]["id"] == stale["clip"]["id"]
    assert events[1]["data"]["error"]["code"] == "upload_expired"
    notes = (await client.get("/v1/notifications", headers=rep.headers)).json()["items"]
    assert [(n["kind"], n["clip_id"]) for n in notes] == [("upload_expired", stale["clip"]["id"])]


async def test_readyz_reports_storage_down(make_settings: Any) -> None:
    from app.main import create_app

    settings = make_settings(
        storage="s3", s3_endpoint_url="http://127.0.0.1:9", s3_bucket="nowhere"
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/readyz")
    assert r.status_code == 503
    details = r.json()["error"]["details"]
    assert details["database"] == "ok"
    assert details == {"config": "ok", "database": "ok", "storage": "unavailable"}


async def _processing_clip(client: httpx.AsyncClient, rep: Any) -> str:
    """A clip whose source is uploaded: processing, its transcode job queued."""
    data = os.urandom(64)
    created = (
        await client.post("/v1/clips", json=clip_body(size_bytes=len(data)), headers=rep.headers)
    ).json()
    clip_id: str = created["clip"]["id"]
    r = await client.put(f"/v1/clips/{clip_id}/source", content=data, headers=rep.headers)
    assert r.status_code == 202
    return clip_id


async def test_clip_of_a_dead_transcode_job_is_failed(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    from app.clips.tasks import fail_abandoned_transcodes

    rep = await (await make_org()).add_user("rep")
    clip_id = await _processing_clip(client, rep)
    ctx = task_context(app)
    await fail_abandoned_transcodes(ctx)  # the job is still queued: nothing happens
    assert (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()[
        "status"
    ] == "processing"

    # The worker was SIGKILLed on the last attempt: the lease sweep buried the job.
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Job).where(Job.kind == "transcode_clip").values(status=JobStatus.dead)
        )
    await fail_abandoned_transcodes(ctx)
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert clip["status"] == "failed"
    assert clip["error"]["code"] == "processing_failed"


async def test_viewable_clip_of_a_dead_transcode_job_is_failed_and_its_media_deleted(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    from app.clips.models import Clip, ClipStatus, media_root
    from app.clips.tasks import fail_abandoned_transcodes

    rep = await (await make_org()).add_user("rep")
    clip_id = uuid.UUID(await _processing_clip(client, rep))
    # The worker died on its last attempt after publishing the first segments.
    storage = app.state.storage
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, clip_id)
        assert clip is not None
        prefix = f"{media_root(clip.org_id, clip.id)}job-1/"
        clip.status = ClipStatus.viewable
        clip.media = {"version": "job-1", "prefix": prefix, "master": "master.m3u8",
                      "variants": [{"name": "v0", "playlist": "v0/index.m3u8"}]}  # fmt: skip
        await session.execute(
            update(Job).where(Job.kind == "transcode_clip").values(status=JobStatus.dead)
        )

    async def one_chunk() -> AsyncIterator[bytes]:
        yield b"segment"

    await storage.put_stream(prefix + "v0/seg_00001.m4s", one_chunk())
    await fail_abandoned_transcodes(task_context(app))

    # A growing playlist that will never end is not left playing: failed, nothing kept.
    body = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert body["status"] == "failed" and body["error"]["code"] == "processing_failed"
    assert body["renditions"] == []
    assert await storage.stat(prefix + "v0/seg_00001.m4s") is None
    r = await client.get(f"/v1/clips/{clip_id}/playback", headers=rep.headers)
    assert r.status_code == 409


async def test_a_clip_whose_upload_expired_takes_a_new_one(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    created = (await client.post("/v1/clips", json=clip_body(), headers=rep.headers)).json()
    clip_id, old_id = created["clip"]["id"], created["upload"]["id"]
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == uuid.UUID(old_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    ctx = task_context(app)
    await expire_uploads(ctx)
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert (clip["status"], clip["error"]["code"]) == ("failed", "upload_expired")

    data = os.urandom(2048)
    r = await client.post(
        f"/v1/clips/{clip_id}/upload", json={"size_bytes": len(data)}, headers=rep.headers
    )
    assert r.status_code == 201, r.text
    new_id = r.json()["id"]
    await expire_uploads(ctx)  # the new upload is not due
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert (clip["status"], clip["error"], clip["upload"]["id"]) == (
        "awaiting_upload",
        None,
        new_id,
    )

    # The clip takes its source either way; here as one body.
    r = await client.put(f"/v1/clips/{clip_id}/source", content=data, headers=rep.headers)
    assert r.status_code == 202, r.text
    stored = await app.state.storage.sha256(await source_key(app, clip_id))
    assert stored == hashlib.sha256(data).hexdigest()
    state = (await client.get(f"/v1/uploads/{new_id}", headers=rep.headers)).json()
    assert state["status"] == "completed"
