"""The pre-meeting prep kit: content, order, size, one round trip, ETag / 304."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.clips.models import Clip
from tests.api.feedback_helpers import playable_clip, post_feedback, statements_during
from tests.helpers.api import exemplar_clip, mark
from tests.helpers.sql_count import queries


async def downloadable(app: Any, clip_id: str) -> None:
    """Give a test clip an MP4 and a poster, as a finished transcode would."""
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, uuid.UUID(clip_id))
        assert clip is not None
        media = dict(clip.media or {}) | {"download": "download.mp4", "poster": "poster.jpg"}
        await session.execute(update(Clip).where(Clip.id == clip.id).values(media=media))


async def kit(client: httpx.AsyncClient, actor: Any, **params: Any) -> httpx.Response:
    return await client.get("/v1/prep", params=params, headers=actor.headers)


async def test_prep_kit_content_and_order(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, peer = await org.add_user("rep"), await org.add_user("rep", name="Pat Peer")
    top, coach = await org.add_user("top_performer", name="Tina"), await org.add_user("coach")
    best = await exemplar_clip(app, client, top, coach, title="Best close")
    await exemplar_clip(app, client, top, coach, title="Second close")
    await exemplar_clip(app, client, top, top, title="Third close")
    await exemplar_clip(app, client, top, top, title="Fourth close")
    await exemplar_clip(app, client, top, coach, stage="prospecting", skills=[])
    await downloadable(app, best)
    # Make "Best close" the best: viewers who finished it.
    for viewer in (rep, peer):
        await client.post(
            f"/v1/clips/{best}/views",
            json={"position_ms": 0, "watched_ms": 10_000, "completed": True},
            headers=viewer.headers,
        )
    await mark(client, coach, best)  # refreshes its score now

    # Tips: on exemplars and pitches of the stage, most helpful first, then newest.
    pitch = await playable_clip(app, client, peer, stage="closing", skills=["urgency"])
    tip_low = (await post_feedback(client, top, pitch, body="Name the cost of waiting")).json()
    tip_top = (
        await post_feedback(
            client,
            peer,
            best,
            body="Notice the pause after the price",
            skill="value_roi",
            timestamp_ms=4200,
        )
    ).json()
    await post_feedback(client, top, pitch, body="Newest, not helpful yet")
    for voter in (rep, coach):
        await client.post(f"/v1/feedback/{tip_top['id']}/reactions/helpful", headers=voter.headers)
    await client.post(f"/v1/feedback/{tip_low['id']}/reactions/helpful", headers=rep.headers)
    elsewhere = await playable_clip(app, client, peer, stage="prospecting", skills=[])
    await post_feedback(client, top, elsewhere, body="Prospecting tip")

    # My open feedback: unresolved threads on my own closing clips, newest first.
    mine = await playable_clip(app, client, rep, stage="closing", skills=[])
    old = (await post_feedback(client, coach, mine, body="Old note")).json()
    done = (await post_feedback(client, coach, mine, body="Worked on")).json()
    new = (await post_feedback(client, top, mine, body="x" * 1000, timestamp_ms=9000)).json()
    await client.post(f"/v1/feedback/{done['id']}/resolve", headers=rep.headers)
    my_prospecting = await playable_clip(app, client, rep, stage="prospecting", skills=[])
    for _ in range(2):
        await post_feedback(client, coach, my_prospecting, body="Prospecting note")

    r = await kit(client, rep, stage="closing")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stage"] == "closing"
    titles = [e["title"] for e in body["exemplars"]]
    # Third and Fourth tie on every signal but recency, which rounds away here.
    assert titles[:2] == ["Best close", "Second close"]
    assert titles[2] in {"Third close", "Fourth close"} and len(titles) == 3
    first = body["exemplars"][0]
    assert first["clip_id"] == best and first["owner_name"] == "Tina"
    assert first["note"] == "Watch the ROI framing" and first["duration_ms"] == 10_000
    assert first["hls_url"].startswith("http://testserver/v1/play/")
    assert first["mp4_url"].endswith("/download.mp4") and first["poster_url"].endswith("poster.jpg")
    assert body["exemplars"][1]["mp4_url"] is None  # no download rendition yet
    # By helpful marks, then newest (my own clip's notes are feedback of the stage too).
    assert [t["id"] for t in body["tips"]] == [tip_top["id"], tip_low["id"], new["id"]]
    top_tip = body["tips"][0]
    assert (top_tip["helpful_count"], top_tip["author_name"], top_tip["skill"]) == (
        2, "Pat Peer", "value_roi",
    )  # fmt: skip
    assert top_tip["deep_link"] == f"peerpitch://clips/{best}?t_ms=4200&feedback={tip_top['id']}"
    assert [t["id"] for t in body["my_open_feedback"]] == [new["id"], old["id"]]
    long_one = body["my_open_feedback"][0]
    assert len(long_one["body"]) == 280 and long_one["truncated"] is True
    assert long_one["clip_title"] and long_one["timestamp_ms"] == 9000
    # Stages: the ones where I have open feedback first, the most first, then in order.
    assert [(s["key"], s["my_open_feedback"]) for s in body["stages"]] == [
        ("prospecting", 2), ("closing", 2), ("contact_to_trial", 0),
    ]  # fmt: skip
    await post_feedback(client, top, mine, body="One more")
    r = await kit(client, rep)
    # Without a stage: the kit is for the first of those stages.
    assert [s["key"] for s in r.json()["stages"]][:2] == ["closing", "prospecting"]
    assert r.json()["stage"] == "closing" and r.json()["my_open_feedback"][0]["body"] == "One more"

    # The per-stage counts follow reopening and deleting threads.
    async def closing_open() -> int:
        stages = (await kit(client, rep, stage="closing")).json()["stages"]
        return next(s["my_open_feedback"] for s in stages if s["key"] == "closing")

    assert await closing_open() == 3
    await client.delete(f"/v1/feedback/{done['id']}/resolve", headers=rep.headers)
    assert await closing_open() == 4
    await post_feedback(client, rep, mine, parent_id=old["id"])  # a reply is not a thread
    assert await closing_open() == 4
    await client.delete(f"/v1/feedback/{old['id']}", headers=coach.headers)  # leaves a tombstone
    await client.delete(f"/v1/feedback/{done['id']}", headers=coach.headers)
    assert await closing_open() == 2
    assert (await kit(client, rep, stage="nope")).status_code == 422
    assert (await kit(client, rep, limit=11)).status_code == 422


async def test_prep_kit_size_etag_and_statements(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top, coach = (
        await org.add_user("rep"), await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    exemplars = [await exemplar_clip(app, client, top, coach) for _ in range(4)]
    for clip_id in exemplars:
        await downloadable(app, clip_id)
        await client.post(
            f"/v1/clips/{clip_id}/exemplar", json={"note": "n" * 1000}, headers=coach.headers
        )
    mine = await playable_clip(app, client, rep, stage="closing", skills=[])
    for clip_id in [*exemplars, mine]:
        for _ in range(3):
            await post_feedback(client, top, clip_id, body="b" * 5000, skill="value_roi")

    with statements_during(app) as statements:
        r = await kit(client, rep, stage="closing")
    assert r.status_code == 200
    assert len(r.content) < 20_000, len(r.content)
    body = r.json()
    assert len(body["exemplars"]) == len(body["tips"]) == len(body["my_open_feedback"]) == 3
    # Stages, my open counts, exemplars, tips, my open feedback, delivery (the caller's row
    # aside: app.auth.caller).
    assert len(queries(statements)) == 6, statements

    etag = r.headers["ETag"]
    assert etag.startswith('"') and r.headers["Cache-Control"] == "private, no-cache"
    again = await kit(client, rep, stage="closing")
    assert again.headers["ETag"] == etag
    assert again.json()["exemplars"][0]["hls_url"] is not None
    r = await client.get("/v1/prep?stage=closing", headers=rep.headers | {"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == etag
    r = await client.get(
        "/v1/prep?stage=closing", headers=rep.headers | {"If-None-Match": '"other", ' + etag}
    )
    assert r.status_code == 304
    # Something the kit shows changed: a new note on my clip.
    await post_feedback(client, coach, mine, body="Fresh note")
    r = await client.get("/v1/prep?stage=closing", headers=rep.headers | {"If-None-Match": etag})
    assert r.status_code == 200 and r.headers["ETag"] != etag
    assert r.json()["my_open_feedback"][0]["body"] == "Fresh note"


@pytest.mark.parametrize("size", [1, 8])
async def test_prep_statement_count_does_not_grow(
    app: Any, client: httpx.AsyncClient, make_org: Any, size: int
) -> None:
    org = await make_org()
    rep, top, coach = (
        await org.add_user("rep"), await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    mine = await playable_clip(app, client, rep, stage="closing", skills=[])
    for _ in range(size):
        clip_id = await exemplar_clip(app, client, top, coach)
        await post_feedback(client, top, clip_id)
        await post_feedback(client, coach, mine)
    with statements_during(app) as statements:
        r = await kit(client, rep, stage="closing", limit=10)
    assert len(r.json()["exemplars"]) == size and len(r.json()["my_open_feedback"]) == size
    assert len(queries(statements)) == 6
