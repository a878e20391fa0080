"""Stored analyses kept current: an admin's talk-track edit is matched again against the
stage's stored transcripts (and against a result stored after the edit), and
``peerpitch analyze-speech`` queues the clips that have no current analysis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.cli import main as cli_main
from app.clips.models import Clip
from app.config import get_settings
from app.jobs.kinds import ANALYZE_SPEECH, REMATCH_TALK_TRACK
from app.jobs.models import Job
from app.jobs.registry import JobContext, JobServices
from app.speech import Segment, SpeechResult, TalkTrackPhrase, Transcript, Word, match_talk_track
from app.speech_analysis import service
from app.speech_analysis.maintenance import enqueue_analyses
from app.speech_analysis.tasks import rematch_talk_track
from tests.helpers.api import playable_clip
from tests.speech_analysis.conftest import speech_events, speech_of

SAID = "we help sales teams learn from their best calls basically"


def transcript_of(text: str) -> Transcript:
    words = tuple(
        Word(start_ms=1000 + 400 * i, end_ms=1300 + 400 * i, text=w)
        for i, w in enumerate(text.split())
    )
    segment = Segment(start_ms=1000, end_ms=words[-1].end_ms, text=text, words=words)
    return Transcript(
        engine="pocketsphinx", confidence_class="low", language="en", segments=(segment,)
    )


def result_with(transcript: Transcript, phrases: list[TalkTrackPhrase]) -> SpeechResult:
    return SpeechResult(
        status="ready",
        engine="pocketsphinx",
        confidence_class="low",
        language="en",
        duration_ms=6000,
        talk_track=match_talk_track(transcript, phrases) if phrases else None,
        transcript=transcript,
    )


async def set_talk_track(
    client: httpx.AsyncClient, admin: Any, use: list[str], avoid: list[str]
) -> None:
    r = await client.patch(
        "/v1/stages/contact_to_trial",
        json={
            "skills": [
                {
                    "key": "discovery_questions",
                    "name": "Discovery questions",
                    "phrases_to_use": use,
                    "phrases_to_avoid": avoid,
                }
            ]
        },
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text


async def store(app: Any, clip_id: str, result: SpeechResult) -> None:
    async with app.state.sessionmaker.begin() as session:
        target = await service.analysis_target(session, uuid.UUID(clip_id), force=True)
        assert target is not None
        assert await service.store_result(session, target, result)


async def rematch_jobs(app: Any) -> list[dict[str, Any]]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(Job.payload).where(Job.kind == REMATCH_TALK_TRACK.name).order_by(Job.id)
        )
        return list(rows)


def rematch_context(app: Any, payload: dict[str, Any]) -> JobContext:
    return JobContext(
        settings=app.state.settings,
        engine=app.state.engine,
        sessionmaker=app.state.sessionmaker,
        services=JobServices(storage=app.state.storage),
        worker_id="test",
        job_id=uuid.uuid4(),
        kind=REMATCH_TALK_TRACK.name,
        payload=payload,
        attempts=1,
        max_attempts=3,
    )


def phrases_of(speech: dict[str, Any]) -> list[tuple[str, str, bool, list[int]]]:
    return [
        (p["phrase"], p["kind"], p["said"], p["at_ms"]) for p in speech["talk_track"]["phrases"]
    ]


async def test_a_talk_track_edit_is_matched_again_from_the_stored_transcripts(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    await set_talk_track(client, org.admin, ["sales teams"], [])
    jobs_before = len(await rematch_jobs(app))
    pitch = await playable_clip(app, client, rep)
    other_stage = await playable_clip(app, client, rep, stage="closing", skills=[])
    transcript = transcript_of(SAID)
    # The job started with phrases the admin has since replaced: the stored result is
    # matched against the stage's phrases as they are when it is stored.
    stale = [TalkTrackPhrase(skill="discovery_questions", phrase="pricing", kind="use")]
    await store(app, pitch, result_with(transcript, stale))
    await store(app, other_stage, result_with(transcript, []))
    speech = await speech_of(client, rep, pitch)
    assert phrases_of(speech) == [("sales teams", "use", True, [1800])]

    # The admin edits the talk track: one job for the stage, in the edit's transaction.
    await set_talk_track(client, org.admin, ["best calls", "next steps"], ["basically"])
    jobs = (await rematch_jobs(app))[jobs_before:]
    assert jobs == [{"org_id": org.org_id, "stage": "contact_to_trial"}]
    # Renaming a skill without touching its phrases queues nothing.
    r = await client.patch(
        "/v1/stages/contact_to_trial",
        json={"skills": [{"key": "discovery_questions", "name": "Questions"}]},
        headers=org.admin.headers,
    )
    assert r.status_code == 200, r.text
    assert len(await rematch_jobs(app)) == jobs_before + 1

    events_before = len(await speech_events(client, org.admin, pitch))
    await rematch_talk_track(rematch_context(app, jobs[0]))
    speech = await speech_of(client, rep, pitch)
    assert phrases_of(speech) == [
        ("best calls", "use", True, [3800]),
        ("next steps", "use", False, []),
        ("basically", "avoid", True, [4600]),
    ]
    assert (speech["talk_track"]["used"], speech["talk_track"]["missing"]) == (1, 1)
    assert speech["talk_track"]["avoided_said"] == 1
    events = await speech_events(client, org.admin, pitch)
    assert len(events) == events_before + 1 and events[-1]["data"]["speech"] == speech
    # Another stage's clip is not touched; a second run changes nothing and announces nothing.
    assert (await speech_of(client, rep, other_stage))["talk_track"] is None
    await rematch_talk_track(rematch_context(app, jobs[0]))
    assert len(await speech_events(client, org.admin, pitch)) == events_before + 1


async def test_analyze_speech_queues_clips_without_a_current_analysis(
    app: Any,
    client: httpx.AsyncClient,
    make_org: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    # Ready before speech analysis existed: no job, no analysis.
    never = await playable_clip(app, client, rep)
    analysed = await playable_clip(app, client, rep)
    await store(app, analysed, result_with(transcript_of(SAID), []))
    republished = await playable_clip(app, client, rep)
    await store(app, republished, result_with(transcript_of(SAID), []))
    feedback_clip = await playable_clip(app, client, rep, kind="feedback")
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, uuid.UUID(republished))
        assert clip is not None and clip.media is not None
        clip.media = {**clip.media, "version": "2-1"}

    async def queued() -> dict[str, bool]:
        async with app.state.sessionmaker() as session:
            rows = await session.execute(
                select(Job.payload).where(Job.kind == ANALYZE_SPEECH.name, Job.status == "queued")
            )
            return {p["clip_id"]: bool(p.get("force")) for (p,) in rows}

    # Through the command, as an operator runs it after upgrading.
    monkeypatch.setenv("PEERPITCH_DATABASE_URL", app.state.settings.database_url)
    get_settings.cache_clear()
    try:
        assert await asyncio.to_thread(cli_main, ["analyze-speech"]) == 0
    finally:
        get_settings.cache_clear()
    assert "queued the speech analysis of 2 clips" in capsys.readouterr().out
    assert await queued() == {never: False, republished: False}
    # Run again: nothing is doubled.
    async with app.state.sessionmaker.begin() as session:
        assert await enqueue_analyses(session, force=False) == 2
    assert await queued() == {never: False, republished: False}
    async with app.state.sessionmaker() as session:
        total = await session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == ANALYZE_SPEECH.name)
        )
    assert total == 2

    # --all: every ready pitch or exemplar again, forced (the queued ones keep their jobs).
    async with app.state.sessionmaker.begin() as session:
        assert await enqueue_analyses(session, force=True) == 3
    assert await queued() == {never: False, republished: False, analysed: True}
    assert feedback_clip not in await queued()
