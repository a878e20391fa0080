"""The analyze_speech job's handler run by the test, attempt by attempt: retryable failures
are retried (nothing stored) until the last attempt, a rerun of a finished job does nothing,
and a result for an older media version is replaced by the current one's."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.clips.models import Clip
from app.jobs.kinds import ANALYZE_SPEECH
from app.jobs.models import Job, JobStatus
from app.jobs.registry import JobContext, JobServices
from app.speech_analysis.models import ClipSpeech
from app.speech_analysis.tasks import SpeechRetry, analyze_speech
from tests.helpers.transcode import get_clip, upload, wait_settled
from tests.speech.conftest import Audio
from tests.speech_analysis.conftest import speech_events, speech_of, transcode_only_worker


def job_context(app: Any, clip_id: str, org_id: str, attempt: int, **settings: Any) -> JobContext:
    return JobContext(
        settings=app.state.settings.model_copy(update=settings),
        engine=app.state.engine,
        sessionmaker=app.state.sessionmaker,
        services=JobServices(storage=app.state.storage),
        worker_id="test",
        job_id=uuid.uuid4(),
        kind=ANALYZE_SPEECH.name,
        payload={"clip_id": clip_id, "org_id": org_id},
        attempts=attempt,
        max_attempts=3,
    )


# The recogniser's budget is over before it starts: a "timeout", which a retry may cure.
TOO_SHORT = {"asr_timeout_base_s": 0.001, "asr_timeout_factor": 0.0001}


async def test_retries_then_failure_then_a_newer_version_replaces_it(
    app: Any, client: httpx.AsyncClient, make_org: Any, audio: Audio
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    path = audio.as_video(audio.spoken("job", [400, "s2", 1200, "s0", 300]).path, "job.mp4")
    async with transcode_only_worker(app):
        clip_id = await upload(client, rep, path)
        assert (await wait_settled(client, rep, clip_id))[-1]["status"] == "ready"
    # The ready hook queued the clip's one analysis job (left queued by this worker).
    async with app.state.sessionmaker() as session:
        queued = await session.scalars(
            select(Job.status).where(Job.dedupe_key == f"{ANALYZE_SPEECH}:{clip_id}")
        )
        assert queued.all() == [JobStatus.queued]
    assert (await speech_of(client, rep, clip_id))["status"] == "pending"

    # Attempts before the last: the job is retried, nothing is stored or announced.
    for attempt in (1, 2):
        with pytest.raises(SpeechRetry, match="timeout"):
            await analyze_speech(job_context(app, clip_id, org.org_id, attempt, **TOO_SHORT))
        assert (await speech_of(client, rep, clip_id))["status"] == "pending"
    assert await speech_events(client, org.admin, clip_id) == []

    # The last attempt stores the failure; the clip is untouched.
    await analyze_speech(job_context(app, clip_id, org.org_id, 3, **TOO_SHORT))
    speech = await speech_of(client, rep, clip_id)
    assert (speech["status"], speech["reason"]) == ("failed", "timeout")
    assert (await get_clip(client, rep, clip_id))["status"] == "ready"

    # A rerun of a job whose success was not recorded does nothing.
    await analyze_speech(job_context(app, clip_id, org.org_id, 1))
    assert len(await speech_events(client, org.admin, clip_id)) == 1

    # The clip now plays another media version: the old result is stale ("pending") until
    # that version is analysed, and then replaced (one row per clip).
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, uuid.UUID(clip_id))
        assert clip is not None and clip.media is not None
        await session.execute(
            update(Clip)
            .where(Clip.id == clip.id)
            .values(media={**clip.media, "version": "newer-1"})
        )
    assert (await speech_of(client, rep, clip_id))["status"] == "pending"
    await analyze_speech(job_context(app, clip_id, org.org_id, 1))
    speech = await speech_of(client, rep, clip_id)
    assert (speech["status"], speech["engine"]) == ("ready", "none")
    assert speech["metrics"]["delivery"]["pause_count"] == 1
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(ClipSpeech.media_version).where(ClipSpeech.clip_id == uuid.UUID(clip_id))
        )
        assert rows.all() == ["newer-1"]
    assert [
        e["data"]["speech"]["status"] for e in await speech_events(client, org.admin, clip_id)
    ] == [
        "failed",
        "ready",
    ]

    # A deleted clip is never analysed.
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Clip)
            .where(Clip.id == uuid.UUID(clip_id))
            .values(media={**clip.media, "version": "newest-1"})
        )
    r = await client.delete(f"/v1/clips/{clip_id}", headers=rep.headers)
    assert r.status_code == 204, r.text
    await analyze_speech(job_context(app, clip_id, org.org_id, 1))
    async with app.state.sessionmaker() as session:
        versions = await session.scalars(select(ClipSpeech.media_version))
        assert versions.all() == ["newer-1"]
