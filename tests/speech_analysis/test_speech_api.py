"""Speech analysis through the API: a ready pitch or exemplar is analysed by its own job,
the result is served with its transcript and captions to those who may see the clip, and
nothing about an analysis ever changes the clip."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.jobs.kinds import ANALYZE_SPEECH
from tests.conftest import running_worker
from tests.helpers.api import playable_clip
from tests.helpers.transcode import get_clip, upload
from tests.speech.conftest import Audio
from tests.speech_analysis.conftest import speech_events, speech_of
from workers.events import Finished

SPEECH_ROUTES = ("speech", "transcript", "transcript.vtt")


async def notifications(client: httpx.AsyncClient, actor: Any, kind: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/notifications", headers=actor.headers)
    return [n for n in r.json()["items"] if n["kind"] == kind]


@pytest.mark.speech_settings(asr_engine="pocketsphinx")
async def test_a_spoken_pitch_is_analysed_with_its_talk_track_and_transcript(
    app: Any, client: httpx.AsyncClient, make_org: Any, audio: Audio
) -> None:
    org = await make_org()
    other_org = await make_org("Other")
    rep, colleague, coach = (
        await org.add_user("rep"), await org.add_user("rep"), await org.add_user("coach"),
    )  # fmt: skip
    # The admin gives the clip's stage a talk track through the stages API.
    r = await client.patch(
        "/v1/stages/contact_to_trial",
        json={
            "skills": [
                {
                    "key": "discovery_questions",
                    "name": "Discovery questions",
                    "phrases_to_use": ["sales teams", "feedback from peers"],
                    "phrases_to_avoid": ["basically"],
                },
                {"key": "demo", "name": "Demo", "phrases_to_use": ["best calls"]},
            ]
        },
        headers=org.admin.headers,
    )
    assert r.status_code == 200, r.text
    spoken = audio.spoken("pitch", [700, "s0", 1800, "s1", 500])
    path = audio.as_video(spoken.path, "pitch.mp4")

    async with running_worker(app, concurrency=1) as worker:
        analysed = worker.events.expect(Finished, lambda e: e.kind == ANALYZE_SPEECH.name)
        clip_id = await upload(client, rep, path, visibility="private")
        assert (await asyncio.wait_for(analysed, 90)).outcome == "succeeded"

    speech = await speech_of(client, rep, clip_id)
    assert speech["status"] == "ready" and speech["reason"] is None
    assert (speech["engine"], speech["confidence_class"]) == ("pocketsphinx", "low")
    assert speech["has_transcript"] is True and speech["analyzed_at"]
    delivery = speech["metrics"]["delivery"]
    assert abs(delivery["duration_ms"] - spoken.duration_ms) < 300
    assert abs(delivery["time_to_first_word_ms"] - 700) <= 300
    # The 1.8 s between the sentences is the longest pause.
    assert delivery["pause_count"] >= 1 and 1400 <= delivery["longest_pause_ms"] <= 2200
    assert 0.5 < delivery["speaking_ratio"] < 0.9
    assert speech["metrics"]["loudness"]["integrated_lufs"] > -60
    assert speech["metrics"]["transcript"]["words"] > 0
    # Every phrase of the stage's talk track is reported, said or not (pocketsphinx is
    # often wrong on synthetic voices: the structure is tested here, matching in tests/speech).
    talk = speech["talk_track"]
    assert [(p["skill"], p["phrase"], p["kind"]) for p in talk["phrases"]] == [
        ("discovery_questions", "sales teams", "use"),
        ("discovery_questions", "feedback from peers", "use"),
        ("discovery_questions", "basically", "avoid"),
        ("demo", "best calls", "use"),
    ]
    assert talk["used"] + talk["missing"] == 3
    assert all(p["said"] == bool(p["at_ms"]) for p in talk["phrases"])

    r = await client.get(f"/v1/clips/{clip_id}/transcript", headers=rep.headers)
    assert r.status_code == 200, r.text
    transcript = r.json()
    assert (transcript["clip_id"], transcript["engine"]) == (clip_id, "pocketsphinx")
    segments = transcript["segments"]
    assert segments and all(s["text"] and s["words"] for s in segments)
    for s in segments:
        assert 0 <= s["start_ms"] < s["end_ms"] <= spoken.duration_ms + 300
        for w in s["words"]:
            assert s["start_ms"] <= w["start_ms"] <= w["end_ms"] <= s["end_ms"]
    starts = [s["start_ms"] for s in segments]
    assert starts == sorted(starts) and starts[0] >= 300  # nothing in the leading silence

    r = await client.get(f"/v1/clips/{clip_id}/transcript.vtt", headers=rep.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/vtt")
    assert r.text.startswith("WEBVTT\n") and r.text.count(" --> ") == len(segments)

    # The owner hears about it once; the event is in the outbox; the clip is untouched.
    notes = await notifications(client, rep, "pitch_analyzed")
    assert [(n["clip_id"], n["actor"]) for n in notes] == [(clip_id, None)]
    assert notes[0]["data"]["status"] == "ready"
    assert notes[0]["data"]["confidence_class"] == "low"
    assert notes[0]["data"]["speaking_ratio"] == delivery["speaking_ratio"]
    events = await speech_events(client, org.admin, clip_id)
    assert len(events) == 1
    assert events[0]["data"]["owner_id"] == rep.id
    assert events[0]["data"]["speech"] == speech
    assert (await get_clip(client, rep, clip_id))["status"] == "ready"

    # Seen by those who may see the clip, and no one else (a private pitch).
    for route in SPEECH_ROUTES:
        assert (
            await client.get(f"/v1/clips/{clip_id}/{route}", headers=coach.headers)
        ).status_code == 200
        for stranger in (colleague, other_org.admin):
            r = await client.get(f"/v1/clips/{clip_id}/{route}", headers=stranger.headers)
            assert r.status_code == 404, route
            assert r.json()["error"]["code"] == "not_found"
    assert await speech_events(client, other_org.admin, clip_id) == []


async def test_clips_without_audio_are_unavailable_and_stay_ready(
    app: Any, client: httpx.AsyncClient, make_org: Any, audio: Audio
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    clips: list[str] = []
    async with running_worker(app, concurrency=1) as worker:
        for kind, owner, path in (
            ("pitch", rep, audio.video_only()), ("exemplar", top, audio.silent_video()),
        ):  # fmt: skip
            analysed = worker.events.expect(Finished, lambda e: e.kind == ANALYZE_SPEECH.name)
            clips.append(await upload(client, owner, path, kind=kind))
            assert (await asyncio.wait_for(analysed, 90)).outcome == "succeeded"
    pitch, exemplar = clips

    for clip_id, owner, reason in ((pitch, rep, "no_audio_stream"), (exemplar, top, "silent")):
        speech = await speech_of(client, owner, clip_id)
        assert (speech["status"], speech["reason"], speech["engine"]) == (
            "unavailable", reason, "none",
        )  # fmt: skip
        assert speech["message"] and speech["has_transcript"] is False
        assert (await get_clip(client, owner, clip_id))["status"] == "ready"
        for route in ("transcript", "transcript.vtt"):
            r = await client.get(f"/v1/clips/{clip_id}/{route}", headers=owner.headers)
            assert r.status_code == 404
            assert r.json()["error"]["code"] == "no_transcript"
        assert len(await speech_events(client, org.admin, clip_id)) == 1
    # A pitch's owner learns that it had nothing to analyse; exemplars notify nobody.
    notes = await notifications(client, rep, "pitch_analyzed")
    assert [(n["clip_id"], n["data"]["status"], n["data"]["reason"]) for n in notes] == [
        (pitch, "unavailable", "no_audio_stream")
    ]
    assert await notifications(client, top, "pitch_analyzed") == []


@pytest.mark.speech_settings(asr_engine="whisper")
async def test_a_failing_analysis_never_fails_the_clip(
    app: Any, client: httpx.AsyncClient, make_org: Any, audio: Audio
) -> None:
    # The worker's whisper "model" cannot load: a final failure, stored at once.
    org = await make_org()
    rep = await org.add_user("rep")
    path = audio.as_video(audio.spoken("short", [300, "s2", 300]).path, "short.mp4")
    async with running_worker(app, concurrency=1) as worker:
        analysed = worker.events.expect(Finished, lambda e: e.kind == ANALYZE_SPEECH.name)
        clip_id = await upload(client, rep, path)
        assert (await asyncio.wait_for(analysed, 90)).outcome == "succeeded"

    speech = await speech_of(client, rep, clip_id)
    assert (speech["status"], speech["reason"], speech["engine"]) == (
        "failed", "engine_error", "whisper",
    )  # fmt: skip
    assert speech["metrics"] is None and speech["has_transcript"] is False
    clip = await get_clip(client, rep, clip_id)
    assert (clip["status"], clip["error"]) == ("ready", None)
    r = await client.get(f"/v1/clips/{clip_id}/transcript", headers=rep.headers)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "no_transcript")
    # Announced to integrations, but a broken analysis is not the rep's news.
    events = await speech_events(client, org.admin, clip_id)
    assert [e["data"]["speech"]["status"] for e in events] == ["failed"]
    assert await notifications(client, rep, "pitch_analyzed") == []


async def test_pending_until_analysed_and_never_for_feedback_clips(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    # Ready without its analysis yet (no worker runs here), and still uploading.
    ready = await playable_clip(app, client, rep)
    r = await client.post(
        "/v1/clips",
        json={"title": "Later", "kind": "pitch", "stage": "prospecting", "filename": "a.mp4",
              "content_type": "video/mp4", "size_bytes": 10},
        headers=rep.headers,
    )  # fmt: skip
    uploading = r.json()["clip"]["id"]
    for clip_id in (ready, uploading):
        speech = await speech_of(client, rep, clip_id)
        assert (speech["status"], speech["engine"], speech["metrics"]) == ("pending", None, None)
        for route in ("transcript", "transcript.vtt"):
            r = await client.get(f"/v1/clips/{clip_id}/{route}", headers=rep.headers)
            assert (r.status_code, r.json()["error"]["code"]) == (409, "speech_pending")

    feedback = await playable_clip(app, client, rep, kind="feedback")
    for route in SPEECH_ROUTES:
        r = await client.get(f"/v1/clips/{feedback}/{route}", headers=rep.headers)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "speech_not_analyzed")
    r = await client.get(
        "/v1/clips/00000000-0000-7000-8000-000000000000/speech", headers=rep.headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
