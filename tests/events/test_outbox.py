"""The outbox through the API: every change is one event, in its transaction, with a
per-organization seq; admins replay them with GET /v1/events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from app.events import service as events
from app.events.models import Event
from tests.helpers.api import playable_clip, request_review
from tests.helpers.sql_count import statements_during


async def all_events(client: httpx.AsyncClient, admin: Any, **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/v1/events", params={"limit": 100, **params}, headers=admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def test_feedback_changes_are_events_with_the_resource_as_the_api_shows_it(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    clip_id = await playable_clip(app, client, rep)
    created = await client.post(
        f"/v1/clips/{clip_id}/feedback",
        json={"body": "Ask why first", "timestamp_ms": 1000},
        headers=top.headers,
    )
    assert created.status_code == 201, created.text
    thread = created.json()
    thread_id = thread["id"]
    edited = await client.patch(
        f"/v1/feedback/{thread_id}", json={"body": "Ask why twice"}, headers=top.headers
    )
    await client.post(f"/v1/feedback/{thread_id}/resolve", headers=rep.headers)
    await client.post(f"/v1/feedback/{thread_id}/resolve", headers=rep.headers)  # no change
    await client.delete(f"/v1/feedback/{thread_id}/resolve", headers=rep.headers)
    await client.delete(f"/v1/feedback/{thread_id}", headers=top.headers)

    items = await all_events(client, org.admin, types="feedback.*")
    assert [e["type"] for e in items] == [
        "feedback.created",
        "feedback.updated",
        "feedback.resolved",
        "feedback.reopened",
        "feedback.deleted",
    ]
    seqs = [e["seq"] for e in items]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    first = items[0]
    assert set(first) == {"id", "type", "seq", "occurred_at", "org_id", "data"}
    assert first["org_id"] == org.admin.org_id
    # The resource as the API answered it, without the caller's own reaction flag.
    expected = {k: v for k, v in thread.items() if k != "reacted_by_me"}
    assert first["data"] == expected
    assert items[1]["data"]["body"] == edited.json()["body"] == "Ask why twice"
    assert items[2]["data"]["resolved_by"]["id"] == rep.id
    assert items[4]["data"] == {
        "id": thread_id,
        "clip_id": clip_id,
        "parent_id": None,
        "tombstone": False,
    }
    # The clip owner's notification is an event too (for the owner's live stream).
    notes = await all_events(client, org.admin, types="notification.created")
    assert [(n["data"]["kind"], n["data"]["feedback_id"]) for n in notes] == [
        ("feedback_on_my_clip", thread_id),
        ("feedback_resolved", thread_id),
    ]


async def test_reviews_and_exemplars_are_events(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top, coach = (
        await org.add_user("rep"), await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    clip_id = await playable_clip(app, client, rep, stage="closing", skills=["value_roi"])
    first = (await request_review(client, rep, clip_id, top)).json()
    second = (await request_review(client, rep, clip_id, coach)).json()
    done = await client.post(
        f"/v1/review-requests/{first['id']}/complete",
        json={"scores": {"value_roi": 4}, "summary": "Clear"},
        headers=top.headers,
    )
    assert done.status_code == 200, done.text
    await client.post(
        f"/v1/review-requests/{second['id']}/decline",
        json={"reason": "Away"},
        headers=coach.headers,
    )
    marked = await client.post(f"/v1/clips/{clip_id}/exemplar", json={}, headers=coach.headers)
    assert marked.status_code == 200, marked.text
    await client.delete(f"/v1/clips/{clip_id}/exemplar", headers=coach.headers)

    items = await all_events(client, org.admin, types="review_request.*,exemplar.*")
    assert [(e["type"], e["data"].get("id") or e["data"].get("clip_id")) for e in items] == [
        ("review_request.created", first["id"]),
        ("review_request.created", second["id"]),
        ("review_request.completed", first["id"]),
        ("review_request.declined", second["id"]),
        ("exemplar.marked", None),
        ("exemplar.unmarked", clip_id),
    ]
    assert items[2]["data"]["scores"] == {"value_roi": 4}
    assert items[4]["data"]["clip"]["id"] == clip_id
    assert items[4]["data"]["clip"]["poster_url"] is None  # signed URLs expire; none in events


async def test_replay_pages_filters_and_tenancy(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Other")
    rep = await org.add_user("rep")
    clip_id = await playable_clip(app, client, rep)
    for n in range(5):
        r = await client.post(
            f"/v1/clips/{clip_id}/feedback",
            json={"body": f"note {n}", "timestamp_ms": n},
            headers=rep.headers,
        )
        assert r.status_code == 201
    page = await client.get("/v1/events", params={"limit": 2}, headers=org.admin.headers)
    body = page.json()
    assert [e["data"]["body"] for e in body["items"]] == ["note 0", "note 1"]
    rest = await all_events(client, org.admin, after=body["next_cursor"])
    assert [e["data"]["body"] for e in rest] == ["note 2", "note 3", "note 4"]
    last = await client.get(
        "/v1/events", params={"after": rest[-1]["seq"]}, headers=org.admin.headers
    )
    assert last.json() == {"items": [], "next_cursor": None}
    # Seqs are per organization: the other one starts at 1 and sees none of these.
    assert await all_events(client, other.admin) == []
    other_rep = await other.add_user("rep")
    await playable_clip(app, client, other_rep)
    clip = await client.post(
        "/v1/clips",
        json={"title": "t", "kind": "pitch", "stage": "closing", "filename": "a.mp4",
              "content_type": "video/mp4", "size_bytes": 10},
        headers=other_rep.headers,
    )  # fmt: skip
    await client.delete(f"/v1/clips/{clip.json()['clip']['id']}", headers=other_rep.headers)
    theirs = await all_events(client, other.admin)
    assert [(e["type"], e["seq"]) for e in theirs] == [("clip.deleted", 1)]
    # Admins only; unknown types are refused.
    assert (await client.get("/v1/events", headers=rep.headers)).status_code == 403
    bad = await client.get("/v1/events", params={"types": "clip.nope"}, headers=org.admin.headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "unknown_event_type"


async def test_a_failed_request_records_no_event(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await playable_clip(app, client, rep)
    r = await client.post(
        f"/v1/clips/{clip_id}/feedback",
        json={"body": "x", "timestamp_ms": 1, "skill": "not_a_skill"},
        headers=rep.headers,
    )
    assert r.status_code == 422
    key = {"Idempotency-Key": "once"}
    body = {"body": "x", "timestamp_ms": 1}
    for _ in range(2):  # the replay creates nothing, so it records nothing
        r = await client.post(
            f"/v1/clips/{clip_id}/feedback", json=body, headers={**rep.headers, **key}
        )
        assert r.status_code == 201
    assert [e["type"] for e in await all_events(client, org.admin)] == ["feedback.created"]


async def test_concurrent_writers_get_distinct_seqs_in_commit_order(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await playable_clip(app, client, rep)

    async def post(n: int) -> int:
        r = await client.post(
            f"/v1/clips/{clip_id}/feedback",
            json={"body": f"n{n}", "timestamp_ms": n},
            headers=rep.headers,
        )
        return r.status_code

    assert set(await asyncio.gather(*(post(n) for n in range(12)))) == {201}
    items = await all_events(client, org.admin)
    assert [e["seq"] for e in items] == list(range(1, 13))  # no gap, no repeat
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(Event).order_by(Event.seq))).all()
    assert [r.seq for r in rows] == list(range(1, 13))


async def test_recording_costs_a_statement_per_event_and_one_at_commit_on_postgresql(
    app: Any, make_org: Any, database_url: str
) -> None:
    # This runs on every write of the product: the transaction's events are written, with
    # their seqs and their NOTIFY, by one statement just before it commits.
    org = await make_org()
    org_id = uuid.UUID(org.admin.org_id)
    with statements_during(app) as statements:
        async with app.state.sessionmaker.begin() as session:
            await events.record(session, org_id=org_id, type="clip.deleted", data={"id": "x"})
            await events.record(session, org_id=org_id, type="clip.deleted", data={"id": "y"})
    written = [s for s in statements if "event" in s.lower()]
    # SQLite (in process): an upsert, then one INSERT of both rows.
    expected = 1 if database_url.startswith("postgresql") else 2
    assert len(written) == expected, written
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(Event).order_by(Event.seq))).all()
    assert [(r.seq, r.data) for r in rows] == [(1, {"id": "x"}), (2, {"id": "y"})]


async def test_a_rolled_back_transaction_leaves_no_event_and_no_gap(
    app: Any, make_org: Any
) -> None:
    org = await make_org()
    org_id = uuid.UUID(org.admin.org_id)
    async with app.state.sessionmaker() as session:
        await events.record(session, org_id=org_id, type="clip.deleted", data={"id": "gone"})
        await session.rollback()
    async with app.state.sessionmaker.begin() as session:
        await events.record(session, org_id=org_id, type="clip.deleted", data={"id": "kept"})
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(Event))).all()
    assert [(r.seq, r.data) for r in rows] == [(1, {"id": "kept"})]
