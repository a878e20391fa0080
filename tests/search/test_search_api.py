"""GET /v1/search through the API: transcript segments (stored by the speech analysis, as its
job stores them) and feedback, only on clips the caller may see, kept current as feedback is
edited and deleted and as analyses replace each other; relevance order, keyset pages, errors."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import update

from alembic import command
from app.clips.models import Clip
from app.migrate import alembic_config
from app.speech import Segment, SpeechResult, Transcript
from app.speech_analysis.service import analysis_target, store_failure, store_result
from tests.api.feedback_helpers import post_feedback
from tests.helpers.api import DURATION_MS, playable_clip, request_review
from tests.helpers.sql_count import queries, statements_during

PITCH = [
    (500, 2400, "Thanks for taking the call today."),
    (2600, 5200, "Our customers cut onboarding time in half."),
    (5400, 8800, "Let me share the pricing for your team."),
]
SEARCH_REVISION = "28618bf622d1"


async def store_transcript(
    app: Any, clip_id: str, segments: list[tuple[int, int, str]] | None
) -> None:
    """Store an analysis of the clip the way its job does (app.speech_analysis.service), with
    these transcript segments (None: a failed analysis, without a transcript)."""
    async with app.state.sessionmaker.begin() as session:
        target = await analysis_target(session, uuid.UUID(clip_id), force=True)
        assert target is not None
        if segments is None:
            assert await store_failure(session, target, "pocketsphinx", "asr_failed", "boom")
            return
        transcript = Transcript(
            engine="pocketsphinx",
            confidence_class="low",
            language="en-US",
            segments=tuple(Segment(start_ms=s, end_ms=e, text=t) for s, e, t in segments),
        )
        result = SpeechResult(
            status="ready",
            engine="pocketsphinx",
            confidence_class="low",
            language="en-US",
            duration_ms=DURATION_MS,
            transcript=transcript,
        )
        assert await store_result(session, target, result)


async def search(client: httpx.AsyncClient, actor: Any, **params: Any) -> httpx.Response:
    return await client.get("/v1/search", params=params, headers=actor.headers)


async def hits(
    client: httpx.AsyncClient, actor: Any, q: str, **params: Any
) -> list[dict[str, Any]]:
    r = await search(client, actor, q=q, limit=100, **params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"] is None
    return body["items"]  # type: ignore[no-any-return]


def where(items: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """What each hit points at: its kind, clip and position."""
    return {(h["kind"], h["clip_id"], h["timestamp_ms"]) for h in items}


async def feedback(client: httpx.AsyncClient, actor: Any, clip_id: str, **body: Any) -> str:
    r = await post_feedback(client, actor, clip_id, **body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_finds_a_transcript_phrase_and_feedback_with_marked_snippets(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, peer = await org.add_user("rep"), await org.add_user("top_performer")
    clip_id = await playable_clip(app, client, rep, title="Initech discovery")
    await store_transcript(app, clip_id, PITCH)
    feedback_id = await feedback(
        client, peer, clip_id, timestamp_ms=6000, end_ms=7000,
        body='Nice <b>pricing</b> moment & "pause" after the number.',
    )  # fmt: skip

    found = await hits(client, peer, "PRICING")
    assert sorted(h["kind"] for h in found) == ["feedback", "transcript"]
    by_kind = {h["kind"]: h for h in found}
    transcript, note = by_kind["transcript"], by_kind["feedback"]
    assert transcript == {
        "kind": "transcript",
        "clip_id": clip_id,
        "clip_title": "Initech discovery",
        "stage": "contact_to_trial",
        "timestamp_ms": 5400,
        "end_ms": 8800,
        "snippet": "Let me share the <mark>pricing</mark> for your team.",
        "feedback_id": None,
        "score": transcript["score"],
    }
    # Everything but the marks is escaped: the snippet is safe to insert as HTML.
    assert note == {
        "kind": "feedback",
        "clip_id": clip_id,
        "clip_title": "Initech discovery",
        "stage": "contact_to_trial",
        "timestamp_ms": 6000,
        "end_ms": 7000,
        "snippet": "Nice &lt;b&gt;<mark>pricing</mark>&lt;/b&gt; moment &amp; &quot;pause&quot; "
        "after the number.",
        "feedback_id": feedback_id,
        "score": note["score"],
    }
    assert all(isinstance(h["score"], float) and h["score"] > 0 for h in found)
    scores = [h["score"] for h in found]
    assert scores == sorted(scores, reverse=True)

    # Every word, in any order; a quoted phrase as written; whole words, any case or accent.
    assert where(await hits(client, peer, "half onboarding")) == {("transcript", clip_id, 2600)}
    phrase = await hits(client, peer, '"onboarding time"')
    assert [h["snippet"] for h in phrase] == [
        "Our customers cut <mark>onboarding time</mark> in half."
    ]
    assert await hits(client, peer, '"time onboarding"') == []
    assert await hits(client, peer, "onboarding pricing") == []
    assert await hits(client, peer, "price") == []
    assert where(await hits(client, peer, "TÉAM")) == {("transcript", clip_id, 5400)}
    # Nothing is an operator: "-" is punctuation (not "without"), "or" is a word.
    assert where(await hits(client, peer, "pricing -team")) == {("transcript", clip_id, 5400)}
    assert await hits(client, peer, "pricing or team") == []


async def test_never_finds_what_the_caller_may_not_see(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Other")
    owner, colleague, reviewer = (
        await org.add_user("rep"), await org.add_user("rep"), await org.add_user("top_performer"),
    )  # fmt: skip
    coach = await org.add_user("coach")
    private = await playable_clip(app, client, owner, visibility="private")
    shared = await playable_clip(app, client, owner)
    for clip_id in (private, shared):
        await store_transcript(app, clip_id, PITCH)
        await feedback(client, owner, clip_id, body="Mention the pricing tiers earlier.")
    # The other organization says the same things in its own clip.
    theirs = await playable_clip(app, client, other.admin)
    await store_transcript(app, theirs, PITCH)
    await feedback(client, other.admin, theirs, body="Mention the pricing tiers earlier.")

    def clips(items: list[dict[str, Any]]) -> set[str]:
        return {h["clip_id"] for h in items}

    assert clips(await hits(client, owner, "pricing")) == {private, shared}
    assert clips(await hits(client, coach, "pricing")) == {private, shared}
    assert clips(await hits(client, colleague, "pricing")) == {shared}
    assert clips(await hits(client, reviewer, "pricing")) == {shared}
    assert clips(await hits(client, other.admin, "pricing")) == {theirs}
    assert len(await hits(client, colleague, "pricing")) == 2  # segment and feedback

    # Asked to review the private clip: the reviewer finds it too, until declining.
    r = await request_review(client, owner, private, reviewer)
    assert r.status_code == 201, r.text
    assert clips(await hits(client, reviewer, "pricing")) == {private, shared}
    r = await client.post(
        f"/v1/review-requests/{r.json()['id']}/decline", json={}, headers=reviewer.headers
    )
    assert r.status_code == 200, r.text
    assert clips(await hits(client, reviewer, "pricing")) == {shared}

    # A deleted clip is never found again, by anyone.
    r = await client.delete(f"/v1/clips/{shared}", headers=owner.headers)
    assert r.status_code == 204
    for actor in (owner, coach, colleague):
        assert shared not in clips(await hits(client, actor, "pricing"))
    assert clips(await hits(client, colleague, "pricing")) == set()


async def test_feedback_is_found_as_it_now_reads(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, peer = await org.add_user("rep"), await org.add_user("top_performer")
    clip_id = await playable_clip(app, client, rep)
    root = await feedback(
        client, peer, clip_id, body="Slow down before the demo.", timestamp_ms=1000
    )
    reply = await feedback(
        client, rep, clip_id, body="Will do before the next demo.", parent_id=root
    )
    alone = await feedback(client, peer, clip_id, body="Strong demo close.", timestamp_ms=9000)
    assert {h["feedback_id"] for h in await hits(client, peer, "demo")} == {root, reply, alone}

    # Edited: found by the new words, not the old.
    r = await client.patch(
        f"/v1/feedback/{root}", json={"body": "Breathe before the walkthrough."},
        headers=peer.headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert await hits(client, peer, "slow") == []
    assert [h["feedback_id"] for h in await hits(client, peer, "breathe")] == [root]
    assert {h["feedback_id"] for h in await hits(client, peer, "demo")} == {reply, alone}

    # A thread that moves takes its replies along.
    r = await client.patch(
        f"/v1/feedback/{root}", json={"timestamp_ms": 4000, "end_ms": 5000}, headers=peer.headers
    )
    assert r.status_code == 200, r.text
    for q, item in (("breathe", root), ("will", reply)):
        (hit,) = await hits(client, peer, q)
        assert (hit["feedback_id"], hit["timestamp_ms"], hit["end_ms"]) == (item, 4000, 5000)

    # Deleted: a thread with replies stays as a tombstone (not found), its reply is found;
    # an item without replies is gone.
    for item in (root, alone):
        r = await client.delete(f"/v1/feedback/{item}", headers=peer.headers)
        assert r.status_code == 204, r.text
    assert await hits(client, peer, "breathe") == []
    assert [h["feedback_id"] for h in await hits(client, peer, "demo")] == [reply]
    r = await client.delete(f"/v1/feedback/{reply}", headers=rep.headers)
    assert r.status_code == 204
    assert await hits(client, peer, "demo") == []


async def test_a_new_analysis_replaces_the_clips_transcript_rows(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await playable_clip(app, client, rep)
    await store_transcript(app, clip_id, PITCH)
    assert len(await hits(client, rep, "the")) == 2  # "the call", "the pricing"

    await store_transcript(app, clip_id, [(100, 900, "Quarterly pricing review.")])
    assert await hits(client, rep, "onboarding") == []
    assert where(await hits(client, rep, "pricing")) == {("transcript", clip_id, 100)}

    # An analysis without a transcript (failed) leaves nothing of the old one.
    await store_transcript(app, clip_id, None)
    assert await hits(client, rep, "pricing") == []

    # A transcript of a media version the clip no longer plays is not found.
    await store_transcript(app, clip_id, PITCH)
    assert len(await hits(client, rep, "pricing")) == 1
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, uuid.UUID(clip_id))
        assert clip is not None
        media = {**(clip.media or {}), "version": "2-2"}
        await session.execute(update(Clip).where(Clip.id == clip.id).values(media=media))
    assert await hits(client, rep, "pricing") == []


async def test_stage_filter(app: Any, client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    discovery = await playable_clip(app, client, rep)  # contact_to_trial
    closing = await playable_clip(app, client, rep, stage="closing", skills=["value_roi"])
    for clip_id in (discovery, closing):
        await feedback(client, rep, clip_id, body="Quantify the ROI for the CFO.")

    every = await hits(client, rep, "roi")
    assert {(h["clip_id"], h["stage"]) for h in every} == {
        (discovery, "contact_to_trial"), (closing, "closing"),
    }  # fmt: skip
    only = await hits(client, rep, "roi", stage="closing")
    assert [(h["clip_id"], h["stage"]) for h in only] == [(closing, "closing")]
    # A stage of the organization without hits is an empty page; an unknown stage is 422.
    assert await hits(client, rep, "roi", stage="prospecting") == []
    r = await search(client, rep, q="roi", stage="negotiation")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "unknown_stage"
    assert r.json()["error"]["details"][0]["loc"] == ["query", "stage"]


async def test_pages_cover_every_hit_once_in_relevance_order_at_a_constant_cost(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, peer = await org.add_user("rep"), await org.add_user("top_performer")
    clips = [await playable_clip(app, client, rep, title=f"Pitch {i}") for i in range(3)]
    expected: set[tuple[str, str, int]] = set()
    for i, clip_id in enumerate(clips):
        segments = [
            (1000 * n, 1000 * n + 900, "budget " * (1 + (n + i) % 3) + f"line {n}")
            for n in range(4)
        ]
        await store_transcript(app, clip_id, segments)
        expected |= {("transcript", clip_id, start) for start, _end, _text in segments}
        for n in range(5):
            body = f"Ask about the budget owner ({n})." + (" budget" * (n % 2))
            await feedback(client, peer, clip_id, body=body, timestamp_ms=500 * n)
            expected.add(("feedback", clip_id, 500 * n))
    assert len(expected) == 27

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    reads: list[int] = []
    while True:
        params: dict[str, Any] = {"q": "budget", "limit": 4}
        if cursor:
            params["cursor"] = cursor
        with statements_during(app) as statements:
            r = await search(client, peer, **params)
        assert r.status_code == 200, r.text
        reads.append(len(queries(statements)))
        page = r.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= 4
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(expected) and where(seen) == expected
    order = [(-h["score"], h["clip_id"], h["timestamp_ms"]) for h in seen]
    assert order == sorted(order)
    assert len({h["score"] for h in seen}) > 1  # ranked, not all alike
    # The same statements for every page, first or later (none per hit).
    assert len(set(reads)) == 1, reads
    with statements_during(app) as statements:
        r = await search(client, peer, q="budget", limit=100)
    assert len(r.json()["items"]) == 27
    assert len(queries(statements)) == reads[0]
    assert r.json()["items"] == seen


async def test_bad_requests_answer_422_in_the_envelope(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await playable_clip(app, client, rep)
    await playable_clip(app, client, rep)  # two clips: the clip list has a next page
    for n in range(3):
        await feedback(client, rep, clip_id, body=f"Budget question {n}.")
    r = await search(client, rep, q="budget", limit=1)
    assert r.status_code == 200 and r.json()["next_cursor"]

    clips_cursor = (await client.get("/v1/clips", params={"limit": 1}, headers=rep.headers)).json()
    assert clips_cursor["next_cursor"]
    bad_cursors = ["not-a-cursor", r.json()["next_cursor"][:-3], "W10", clips_cursor["next_cursor"]]
    for cursor in bad_cursors:
        r = await search(client, rep, q="budget", cursor=cursor)
        assert r.status_code == 422, (cursor, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_cursor" and error["message"]
        assert error["details"][0]["loc"] == ["query", "cursor"]

    for params in (
        {"q": ""}, {"q": "x" * 201}, {}, {"q": "  ?! "}, {"q": "budget", "limit": 0},
        {"q": "budget", "limit": 101}, {"q": "budget", "stage": ""},
    ):  # fmt: skip
        r = await search(client, rep, **params)
        assert r.status_code == 422, (params, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_error", params
        assert error["message"] and error["details"]
    # 200 characters are allowed; a word longer than 100 characters is not searchable.
    r = await search(client, rep, q=("budget " * 30)[:200])
    assert r.status_code == 200 and len(r.json()["items"]) == 0
    r = await search(client, rep, q="x" * 101)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["query", "q"]
    assert (await client.get("/v1/search", params={"q": "budget"})).status_code == 401


async def test_the_migration_indexes_what_was_written_before_it(
    app: Any, client: httpx.AsyncClient, make_org: Any, database_url: str
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await playable_clip(app, client, rep)
    await store_transcript(app, clip_id, PITCH)
    root = await feedback(client, rep, clip_id, body="Open with the onboarding numbers.")
    reply = await feedback(client, rep, clip_id, body="And the onboarding quote.", parent_id=root)
    tombstone = await feedback(client, rep, clip_id, body="Gone onboarding.", timestamp_ms=3000)
    await feedback(client, rep, clip_id, body="Kept.", parent_id=tombstone)
    r = await client.delete(f"/v1/feedback/{tombstone}", headers=rep.headers)
    assert r.status_code == 204
    failed = await playable_clip(app, client, rep)  # an analysis without a transcript
    await store_transcript(app, failed, None)
    before = await hits(client, rep, "onboarding")
    assert len(before) == 3

    # Back to the revision before the search index, and up again: the upgrade indexes the
    # feedback and transcripts already stored (alembic runs its own event loop: a thread).
    config = alembic_config(database_url)
    config.attributes["configure_logging"] = False
    await app.state.engine.dispose()
    try:
        await asyncio.to_thread(command.downgrade, config, f"{SEARCH_REVISION}-1")
    finally:
        await asyncio.to_thread(command.upgrade, config, "head")
    after = await hits(client, rep, "onboarding")
    assert {h["feedback_id"] for h in after} == {root, reply, None}

    def by_source(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(items, key=lambda h: (h["kind"], h["feedback_id"] or ""))

    assert by_source(after) == by_source(before)  # snippets and scores too
    assert [h["snippet"] for h in after if h["kind"] == "transcript"] == [
        "Our customers cut <mark>onboarding</mark> time in half."
    ]
