"""transcode_clip end to end: upload through the API, a real Worker runs ffmpeg, the clip
becomes ready, and storage holds exactly one published set of renditions."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.clips.models import Clip
from app.jobs.kinds import PURGE_CLIP
from app.jobs.models import Job, JobStatus
from tests.helpers.transcode import get_clip, upload, wait_settled
from tests.helpers.waiting import eventually
from tests.media.conftest import Clips, ffprobe
from workers.events import Finished
from workers.runtime import Worker

ROOT = Path(__file__).resolve().parent.parent.parent


async def read_object(storage: Any, key: str) -> bytes:
    return b"".join([chunk async for chunk in await storage.open_range(key)])


async def test_landscape_clip_becomes_ready_with_all_outputs(
    app: Any, client: httpx.AsyncClient, make_org: Any, worker: Worker, media: Clips, tmp_path: Path
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await upload(client, rep, media.landscape())
    seen = await wait_settled(client, rep, clip_id)

    statuses = [c["status"] for c in seen]
    assert statuses[-1] == "ready", seen[-1]
    # (A 3 s clip is one segment: it may go from processing to ready; see test_progressive.)
    progress = [c["progress"] for c in seen]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0

    clip = seen[-1]
    assert (clip["width"], clip["height"], clip["has_audio"]) == (1280, 720, True)
    assert 2900 <= clip["duration_ms"] <= 3100
    assert [(r["width"], r["height"]) for r in clip["renditions"]] == [(640, 360), (1280, 720)]

    async with app.state.sessionmaker() as session:
        row = await session.get(Clip, uuid.UUID(clip_id))
        assert row is not None and row.media is not None
        media_info = row.media
    storage = app.state.storage
    prefix = media_info["prefix"]
    master = (await read_object(storage, prefix + "master.m3u8")).decode()
    assert master.count("#EXT-X-STREAM-INF") == 2
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF"):
            assert "BANDWIDTH=" in line and "RESOLUTION=" in line and 'CODECS="avc1.' in line
    for name in ("download.mp4", "poster.jpg", "storyboard.jpg", "storyboard.vtt"):
        info = await storage.stat(prefix + name)
        assert info is not None and info.size > 0, name
    download = tmp_path / "download.mp4"
    await storage.download_to(prefix + "download.mp4", download)
    streams = ffprobe(download, "-show_streams")["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    assert (video["codec_name"], video["height"]) == ("h264", 720)
    vtt = (await read_object(storage, prefix + "storyboard.vtt")).decode()
    assert vtt.startswith("WEBVTT") and "#xywh=" in vtt

    # Deleting purges every object of the clip, renditions included.
    purged = worker.events.expect(Finished, lambda e: e.kind == PURGE_CLIP.name)
    assert (await client.delete(f"/v1/clips/{clip_id}", headers=rep.headers)).status_code == 204
    assert (await asyncio.wait_for(purged, 30)).outcome == "succeeded"
    assert await storage.stat(prefix + "master.m3u8") is None
    assert await storage.stat(prefix + "v0/index.m3u8") is None


async def test_bad_inputs_fail_with_their_code_and_the_worker_stays_healthy(
    app: Any, client: httpx.AsyncClient, make_org: Any, worker: Worker, media: Clips
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    cases = {
        "text": ("invalid_media", media.text()),
        "png": ("invalid_media", media.png()),
        "wav": ("no_video_stream", media.wav()),
        "hls": ("invalid_media", media.hls_playlist()),
    }
    ids = {name: await upload(client, rep, path) for name, (_, path) in cases.items()}
    for name, (code, _) in cases.items():
        final = (await wait_settled(client, rep, ids[name]))[-1]
        assert final["status"] == "failed", name
        assert final["error"]["code"] == code, (name, final["error"])
        assert "root:" not in final["error"]["message"]

    # The clip fails inside the handler; the worker records the job's end just after.
    async def transcode_jobs() -> list[Job]:
        async with app.state.sessionmaker() as session:
            return list(
                (await session.scalars(select(Job).where(Job.kind == "transcode_clip"))).all()
            )

    jobs = await eventually(
        transcode_jobs,
        until=lambda jobs: all(j.status == JobStatus.failed for j in jobs),
        timeout=30,
        what="every transcode job to be recorded as failed",
    )
    # Permanent failures: one attempt each, no retries queued.
    assert {j.status for j in jobs} == {JobStatus.failed}
    assert {j.attempts for j in jobs} == {1}
    # The same worker still processes a good clip.
    good = await upload(client, rep, media.no_audio())
    assert (await wait_settled(client, rep, good))[-1]["status"] == "ready"


async def test_sigkilled_worker_recovers_with_one_set_of_renditions(
    app: Any,
    client: httpx.AsyncClient,
    make_org: Any,
    media: Clips,
    settings: Any,
    database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await upload(client, rep, media.landscape())
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PEERPITCH_DATABASE_URL": database_url,
        "PEERPITCH_SECRET_KEY": settings.secret_key,
        "PEERPITCH_MEDIA_DIR": str(settings.media_dir),
        "PEERPITCH_TRANSCODE_PRESET": "ultrafast",
        "PEERPITCH_JOB_LEASE_S": "2",
        "PEERPITCH_JOB_HEARTBEAT_S": "1",
        "PEERPITCH_JOB_POLL_INTERVAL_S": "0.2",
        "PEERPITCH_SWEEP_INTERVAL_S": "1",
        "PEERPITCH_STORAGE": settings.storage,
        "PEERPITCH_S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "PEERPITCH_S3_BUCKET": settings.s3_bucket,
    }

    def start_worker(preset: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker", "--concurrency", "1"],
            env={**env, "PEERPITCH_TRANSCODE_PRESET": preset},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    first = start_worker("veryslow")  # slow, so the kill reliably lands mid-encode
    try:
        # Kill it mid-encode: once the job runs and ffmpeg has reported progress.
        clip = await eventually(
            lambda: get_clip(client, rep, clip_id),
            until=lambda c: c["progress"] > 0 or c["status"] != "processing",
            timeout=60,
            what="the first worker to report progress",
        )
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its ffmpeg children
        first.wait(10)
        assert clip["status"] in ("processing", "viewable"), clip
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    second = start_worker("ultrafast")
    try:
        final = (await wait_settled(client, rep, clip_id, timeout=120))[-1]
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert final["status"] == "ready", final

    async with app.state.sessionmaker() as session:
        job = (await session.scalars(select(Job).where(Job.kind == "transcode_clip"))).one()
        row = await session.get(Clip, uuid.UUID(clip_id))
    assert job.status == JobStatus.succeeded
    assert job.attempts == 2
    assert row is not None and row.media is not None
    media_prefix = f"orgs/{org.org_id}/clips/{clip_id}/media/"
    if settings.storage == "s3":
        listed = request.getfixturevalue("s3_client").list_objects_v2(
            Bucket=settings.s3_bucket, Prefix=media_prefix
        )
        keys = [o["Key"] for o in listed.get("Contents", [])]
    else:
        root = Path(settings.media_dir)
        keys = [str(p.relative_to(root)) for p in (root / media_prefix).rglob("*") if p.is_file()]
    versions = {k[len(media_prefix) :].split("/")[0] for k in keys}
    assert versions == {row.media["version"]}
