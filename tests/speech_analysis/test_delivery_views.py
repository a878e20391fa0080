"""Delivery figures where reps look: per-stage trends in the skill profile, and the prep kit's
"my latest pitch next to the median of the stage's exemplars". Analyses are stored the way
the speech job stores them (``store_result`` / ``store_failure``), without running it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.clips.models import Clip
from app.db import utcnow
from app.speech import DeliveryMetrics, Metrics, SpeechResult, TranscriptMetrics
from app.speech_analysis import service
from app.speech_analysis.delivery import RECENT, median, trend
from tests.helpers.api import exemplar_clip, playable_clip
from tests.helpers.sql_count import queries, statements_during

STAGE = "closing"


def speech_result(
    wpm: float | None,
    fpm: float | None,
    pauses: int,
    longest_ms: int,
    ratio: float,
    *,
    status: str = "ready",
) -> SpeechResult:
    """A result with these figures; ``wpm`` None: no transcript (engine none)."""
    words = (
        None
        if wpm is None
        else TranscriptMetrics(words=100, words_per_minute=wpm, fillers=3, fillers_per_minute=fpm)
    )
    return SpeechResult(
        status=status,  # type: ignore[arg-type]
        reason="silent" if status == "unavailable" else None,
        engine="none" if wpm is None else "pocketsphinx",
        confidence_class=None if wpm is None else "low",
        language="en",
        duration_ms=10_000,
        metrics=Metrics(
            delivery=DeliveryMetrics(
                duration_ms=10_000,
                speaking_ms=int(10_000 * ratio),
                speaking_ratio=ratio,
                time_to_first_word_ms=300,
                trailing_silence_ms=200,
                pause_count=pauses,
                longest_pause_ms=longest_ms,
                longest_monologue_ms=4000,
            ),
            loudness=None,
            transcript=words,
        ),
    )


async def analyse(app: Any, clip_id: str, result: SpeechResult | None) -> None:
    """Store the clip's analysis of its current media version (None: the job failed)."""
    async with app.state.sessionmaker.begin() as session:
        target = await service.analysis_target(session, uuid.UUID(clip_id))
        assert target is not None, "the clip's current version is analysed already"
        if result is None:
            stored = await service.store_failure(session, target, "none", "timeout", "boom")
        else:
            stored = await service.store_result(session, target, result)
        assert stored


async def set_clip(app: Any, clip_id: str, **values: Any) -> None:
    async with app.state.sessionmaker.begin() as session:
        await session.execute(update(Clip).where(Clip.id == uuid.UUID(clip_id)).values(**values))


async def republish(app: Any, clip_id: str) -> None:
    """A newer media version of the clip: its stored analysis becomes stale."""
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, uuid.UUID(clip_id))
        assert clip is not None and clip.media is not None
        media = {**clip.media, "version": "2-1"}
        await session.execute(update(Clip).where(Clip.id == clip.id).values(media=media))


async def pitch(
    app: Any, client: httpx.AsyncClient, owner: Any, days_ago: int, **extra: Any
) -> str:
    extra.setdefault("stage", STAGE)
    extra.setdefault("skills", [])
    clip_id = await playable_clip(app, client, owner, **extra)
    await set_clip(app, clip_id, created_at=utcnow() - timedelta(days=days_ago))
    return clip_id


async def profile_stage(
    client: httpx.AsyncClient, viewer: Any, user: Any, stage: str
) -> dict[str, Any]:
    r = await client.get(f"/v1/users/{user.id}/skills", headers=viewer.headers)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = {s["key"]: s for s in r.json()["stages"]}[stage]["delivery"]
    return found


async def test_profile_delivery_trends_per_stage(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, peer, coach = (
        await org.add_user("rep"), await org.add_user("rep"), await org.add_user("coach"),
    )  # fmt: skip
    # Six analysed pitches of the stage, created out of their recording order: the profile
    # orders them by when they were recorded. The fourth oldest has no transcript.
    figures = {  # days ago -> (wpm, fillers/min, pauses, longest pause, speaking ratio)
        50: (120.0, 6.0, 2, 1000, 0.7),
        40: (130.0, 5.0, 2, 1200, 0.72),
        30: (None, None, 2, 1500, 0.75),
        20: (150.0, 4.0, 2, 1400, 0.8),
        10: (160.0, 3.0, 2, 1300, 0.85),
        1: (170.0, 2.0, 3, 1600, 0.9),
    }
    clips: dict[int, str] = {}
    for days in (20, 50, 1, 30, 10, 40):
        clips[days] = await pitch(app, client, rep, days, title=f"{days} days ago")
        wpm, fpm, pauses, longest, ratio = figures[days]
        await analyse(app, clips[days], speech_result(wpm, fpm, pauses, longest, ratio))

    # None of these counts: a stale analysis (the clip was republished since), a failed one,
    # one with nothing to analyse, a deleted pitch, a pitch not analysed yet, someone
    # else's pitch, and a feedback clip.
    outliers = speech_result(400.0, 40.0, 30, 9000, 0.1)
    stale = await pitch(app, client, rep, 0)
    await analyse(app, stale, outliers)
    await republish(app, stale)
    failed = await pitch(app, client, rep, 0)
    await analyse(app, failed, None)
    unavailable = await pitch(app, client, rep, 0)
    await analyse(app, unavailable, speech_result(400.0, 40.0, 30, 9000, 0.1, status="unavailable"))
    deleted = await pitch(app, client, rep, 0)
    await analyse(app, deleted, outliers)
    assert (await client.delete(f"/v1/clips/{deleted}", headers=rep.headers)).status_code == 204
    await pitch(app, client, rep, 0)
    theirs = await pitch(app, client, peer, 0)
    await analyse(app, theirs, outliers)
    # Another stage: its own figures.
    prospecting = await pitch(app, client, rep, 5, stage="prospecting")
    await analyse(app, prospecting, speech_result(110.0, 1.0, 0, 0, 0.95))

    delivery = await profile_stage(client, coach, rep, STAGE)
    assert delivery["pitches"] == 6
    points = delivery["points"]
    assert [p["clip_id"] for p in points] == [clips[d] for d in (50, 40, 30, 20, 10, 1)]
    assert [p["title"] for p in points][:2] == ["50 days ago", "40 days ago"]
    assert [p["words_per_minute"] for p in points] == [120.0, 130.0, None, 150.0, 160.0, 170.0]
    assert [p["confidence_class"] for p in points] == ["low", "low", None, "low", "low", "low"]
    assert points[-1] | {"recorded_at": None, "analyzed_at": None} == {
        "clip_id": clips[1], "title": "1 days ago", "recorded_at": None, "analyzed_at": None,
        "confidence_class": "low", "words_per_minute": 170.0, "fillers_per_minute": 2.0,
        "pause_count": 3, "longest_pause_ms": 1600, "speaking_ratio": 0.9,
    }  # fmt: skip
    assert all(p["analyzed_at"] for p in points)

    trends = delivery["trends"]
    # Words per minute: the last three known (150, 160, 170) against the two before them.
    assert trends["words_per_minute"] == {
        "latest": 170.0, "recent_mean": 160.0, "previous_mean": 125.0, "change": 35.0,
        "direction": "rising",
    }  # fmt: skip
    assert trends["fillers_per_minute"] == {
        "latest": 2.0, "recent_mean": 3.0, "previous_mean": 5.5, "change": -2.5,
        "direction": "falling",
    }  # fmt: skip
    assert trends["pause_count"] == {
        "latest": 3.0, "recent_mean": 2.33, "previous_mean": 2.0, "change": 0.33,
        "direction": "steady",
    }  # fmt: skip
    assert trends["longest_pause_ms"] == {
        "latest": 1600.0, "recent_mean": 1433.33, "previous_mean": 1233.33, "change": 200.0,
        "direction": "steady",
    }  # fmt: skip
    assert trends["speaking_ratio"] == {
        "latest": 0.9, "recent_mean": 0.85, "previous_mean": 0.72, "change": 0.13,
        "direction": "rising",
    }  # fmt: skip

    # The other stages: their own pitches, or nothing.
    other = await profile_stage(client, coach, rep, "prospecting")
    assert other["pitches"] == 1 and [p["clip_id"] for p in other["points"]] == [prospecting]
    assert other["trends"]["words_per_minute"] == {
        "latest": 110.0, "recent_mean": 110.0, "previous_mean": None, "change": None,
        "direction": None,
    }  # fmt: skip
    empty = await profile_stage(client, coach, rep, "contact_to_trial")
    assert empty["pitches"] == 0 and empty["points"] == []
    assert all(set(t.values()) == {None} for t in empty["trends"].values())

    # The rep sees the same figures; the profile's rules apply (a peer does not see it).
    assert await profile_stage(client, rep, rep, STAGE) == delivery
    r = await client.get(f"/v1/users/{rep.id}/skills", headers=peer.headers)
    assert r.status_code == 403
    # The peer's own profile holds only their pitch.
    assert [p["clip_id"] for p in (await profile_stage(client, peer, peer, STAGE))["points"]] == [
        theirs
    ]

    # Republishing a counted pitch takes it out until its new version is analysed.
    await republish(app, clips[1])
    delivery = await profile_stage(client, rep, rep, STAGE)
    assert delivery["pitches"] == 5 and delivery["trends"]["words_per_minute"]["latest"] == 160.0
    await analyse(app, clips[1], speech_result(180.0, 2.0, 3, 1600, 0.9))
    delivery = await profile_stage(client, rep, rep, STAGE)
    assert delivery["points"][-1]["clip_id"] == clips[1]
    assert delivery["trends"]["words_per_minute"]["latest"] == 180.0


async def kit(client: httpx.AsyncClient, actor: Any, etag: str | None = None) -> httpx.Response:
    headers = actor.headers | ({"If-None-Match": etag} if etag else {})
    return await client.get("/v1/prep", params={"stage": STAGE}, headers=headers)


async def test_prep_kit_delivery_mine_next_to_the_exemplar_median(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, newcomer = await org.add_user("rep"), await org.add_user("rep")
    top, coach = await org.add_user("top_performer"), await org.add_user("coach")

    # Exemplars of the stage: three analysed (an odd count), and some that do not count.
    for wpm, fpm, pauses, longest, ratio in (
        (180.0, 1.0, 3, 2000, 0.9), (140.0, 3.0, 1, 1000, 0.7), (150.0, None, 2, 1500, 0.8),
    ):  # fmt: skip
        clip_id = await exemplar_clip(app, client, top, coach, stage=STAGE)
        await analyse(app, clip_id, speech_result(wpm, fpm, pauses, longest, ratio))
    outliers = speech_result(400.0, 40.0, 30, 9000, 0.1)
    await exemplar_clip(app, client, top, coach, stage=STAGE)  # not analysed yet
    failed = await exemplar_clip(app, client, top, coach, stage=STAGE)
    await analyse(app, failed, None)
    stale = await exemplar_clip(app, client, top, coach, stage=STAGE)
    await analyse(app, stale, outliers)
    await republish(app, stale)
    elsewhere = await exemplar_clip(app, client, top, coach, stage="prospecting", skills=[])
    await analyse(app, elsewhere, outliers)
    # A private exemplar: only those who may play it count it.
    private = await exemplar_clip(app, client, top, coach, stage=STAGE, visibility="private")
    await analyse(app, private, speech_result(100.0, 0.0, 0, 0, 1.0))
    # The rep's pitches: a newer and an older analysed one (uploaded in that order: the
    # newest is the newest recorded), a newest not analysed yet, and one of another stage.
    newer = await pitch(app, client, rep, 5)
    await analyse(app, newer, speech_result(None, None, 4, 2500, 0.6))
    older = await pitch(app, client, rep, 9)
    await analyse(app, older, outliers)
    newest = await pitch(app, client, rep, 1)
    other_stage = await pitch(app, client, rep, 0, stage="prospecting")
    await analyse(app, other_stage, outliers)

    with statements_during(app) as statements:
        r = await kit(client, rep)
    assert r.status_code == 200, r.text
    # The kit's five statements and one for the delivery, whatever is analysed (the
    # caller's row aside: app.auth.caller).
    assert len(queries(statements)) == 6, statements
    delivery = r.json()["delivery"]
    assert delivery["mine"] | {"recorded_at": None, "analyzed_at": None} == {
        "clip_id": newer, "title": "Discovery call with Initech", "recorded_at": None,
        "analyzed_at": None, "confidence_class": None, "words_per_minute": None,
        "fillers_per_minute": None, "pause_count": 4, "longest_pause_ms": 2500,
        "speaking_ratio": 0.6,
    }  # fmt: skip
    # The middle of three; fillers over the two exemplars with a transcript.
    assert delivery["exemplar_median"] == {
        "words_per_minute": 150.0, "fillers_per_minute": 2.0, "pause_count": 2.0,
        "longest_pause_ms": 1500, "speaking_ratio": 0.8,
    }  # fmt: skip
    assert delivery["exemplars_analyzed"] == 3
    # A coach may play the private exemplar: four exemplars, medians of an even count.
    coach_kit = (await kit(client, coach)).json()["delivery"]
    assert coach_kit["mine"] is None and coach_kit["exemplars_analyzed"] == 4
    assert coach_kit["exemplar_median"] == {
        "words_per_minute": 145.0, "fillers_per_minute": 1.0, "pause_count": 1.5,
        "longest_pause_ms": 1250, "speaking_ratio": 0.85,
    }  # fmt: skip
    # Someone without analysed pitches sees the exemplars alone.
    r = await kit(client, newcomer)
    assert r.json()["delivery"]["mine"] is None
    assert r.json()["delivery"]["exemplar_median"] == delivery["exemplar_median"]

    # Unchanged: 304. A new exemplar's analysis lands (an even count now): a new ETag.
    fourth = await exemplar_clip(app, client, top, coach, stage=STAGE)
    etag = (await kit(client, rep)).headers["ETag"]
    assert (await kit(client, rep, etag)).status_code == 304
    await analyse(app, fourth, speech_result(200.0, 5.0, 4, 3001, 0.95))
    r = await kit(client, rep, etag)
    assert r.status_code == 200 and r.headers["ETag"] != etag
    delivery = r.json()["delivery"]
    assert delivery["exemplars_analyzed"] == 4
    assert delivery["exemplar_median"] == {
        "words_per_minute": 165.0, "fillers_per_minute": 3.0, "pause_count": 2.5,
        "longest_pause_ms": 1750, "speaking_ratio": 0.85,
    }  # fmt: skip
    etag = r.headers["ETag"]
    assert (await kit(client, rep, etag)).status_code == 304

    # My newest pitch is analysed: it is now "mine", and the ETag changes again.
    await analyse(app, newest, speech_result(130.0, 2.5, 2, 1200, 0.75))
    r = await kit(client, rep, etag)
    assert r.status_code == 200 and r.headers["ETag"] != etag
    mine = r.json()["delivery"]["mine"]
    assert (mine["clip_id"], mine["words_per_minute"], mine["confidence_class"]) == (
        newest, 130.0, "low",
    )  # fmt: skip
    etag = r.headers["ETag"]
    assert (await kit(client, rep, etag)).status_code == 304
    # A republished pitch has no current analysis: the older one is mine again.
    await republish(app, newest)
    r = await kit(client, rep, etag)
    assert r.status_code == 200 and r.json()["delivery"]["mine"]["clip_id"] == newer


async def test_prep_kit_delivery_when_nothing_is_analysed(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top, coach = (
        await org.add_user("rep"), await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    await exemplar_clip(app, client, top, coach, stage=STAGE)
    await pitch(app, client, rep, 1)
    r = await kit(client, rep)
    assert r.status_code == 200, r.text
    assert r.json()["delivery"] == {"mine": None, "exemplar_median": None, "exemplars_analyzed": 0}


def test_median_of_known_values() -> None:
    assert median([]) is None and median([None, None]) is None
    assert median([3, None, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert median([0.1, 0.2]) == 0.15
    assert median([1 / 3]) == 0.33


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], (None, None, None, None, None)),
        ([5.0, None], (5.0, 5.0, None, None, None)),
        # Fewer than RECENT + 1 known values: nothing to compare with.
        ([1.0, 2.0, 3.0], (3.0, 2.0, None, None, None)),
        ([1.0, None, 2.0, 3.0, 11.0], (11.0, 5.33, 1.0, 4.33, "rising")),
        # Exactly the threshold is a direction; just under it is steady.
        ([10.0, 10.0, 10.0, 12.0, 12.0, 12.0], (12.0, 12.0, 10.0, 2.0, "rising")),
        ([10.0, 10.0, 10.0, 8.0, 8.0, 8.0], (8.0, 8.0, 10.0, -2.0, "falling")),
        ([10.0, 10.0, 10.0, 11.99, 11.99, 11.99], (11.99, 11.99, 10.0, 1.99, "steady")),
        # Only the newest 2 * RECENT values count.
        ([100.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], (0.0, 0.0, 0.0, 0.0, "steady")),
    ],
)
def test_trend_of_a_figure(values: list[float | None], expected: tuple[Any, ...]) -> None:
    assert RECENT == 3
    result = trend(values, threshold=2.0)
    assert (
        result.latest,
        result.recent_mean,
        result.previous_mean,
        result.change,
        result.direction,
    ) == expected
