"""GET /v1/events/stream: Server-Sent Events for the signed-in user, through a real server.

Events are recorded here as a domain does (``app.events.service.record`` in a transaction),
so each test controls exactly what happens; tests/events/test_stream_e2e.py follows a real
upload instead.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from app.auth.security import issue_access_token
from app.events import service as events
from app.events.stream import EventHub, event_stream
from app.users.models import User
from tests.conftest import TEST_SECRET
from tests.events.sse import Message, ids, open_stream, record, serving
from tests.helpers.api import create_clip, playable_clip, request_review
from tests.helpers.sql_count import statements_during
from tests.helpers.waiting import eventually


def about(messages: list[Message]) -> list[tuple[str, str | None]]:
    """(type, the data's id) of each message: what happened to what."""
    return [(m.event, m.json()["data"].get("id")) for m in messages]


async def replay(client: httpx.AsyncClient, admin: Any) -> dict[str, dict[str, Any]]:
    r = await client.get("/v1/events", params={"limit": 100}, headers=admin.headers)
    assert r.status_code == 200, r.text
    return {e["id"]: e for e in r.json()["items"]}


async def load_user(app: Any, user_id: str) -> User:
    async with app.state.sessionmaker() as session:
        user: User | None = await session.get(User, uuid.UUID(user_id))
    assert user is not None
    return user


async def test_an_event_about_a_visible_clip_arrives_with_its_seq_as_id(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    clip_id = (await create_clip(client, rep))["clip"]["id"]
    async with serving(app) as base, open_stream(base, top.access_token) as stream:
        assert stream.response.headers["cache-control"] == "no-store"
        assert stream.retry_ms == 2000
        event_id = await record(
            app, org.org_id, "clip.ready", {"id": clip_id, "title": "Pitch"}, clip_id=clip_id
        )
        (message,) = await stream.until(event_id)
    replayed = (await replay(client, org.admin))[str(event_id)]
    assert message.event == "clip.ready"
    assert message.seq == replayed["seq"] >= 1
    assert message.json() == replayed  # the event exactly as GET /v1/events shows it
    assert replayed["data"] == {"id": clip_id, "title": "Pitch"}


async def test_a_reconnect_with_last_event_id_gets_exactly_what_was_missed(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, other, top = (
        await org.add_user("rep"), await org.add_user("rep"), await org.add_user("top_performer"),
    )  # fmt: skip
    shared = (await create_clip(client, rep))["clip"]["id"]
    hidden = (await create_clip(client, other, visibility="private"))["clip"]["id"]

    async def visible(n: int) -> uuid.UUID:
        return await record(app, org.org_id, "clip.ready", {"id": shared, "n": n}, clip_id=shared)

    async with serving(app) as base:
        async with open_stream(base, top.access_token) as stream:
            first = await visible(1)
            (got,) = await stream.until(first)
        # While top is away: two events for top, one about a clip top may not see.
        async with open_stream(base, org.admin.access_token) as admin_stream:
            missed = [
                await visible(2),
                await record(app, org.org_id, "clip.ready", clip_id=hidden),
                await visible(3),
            ]
            # The hub has read past them: top's resume reads them for top alone.
            await admin_stream.until(missed[-1])
            async with open_stream(base, top.access_token, last_event_id=got.seq) as resumed:
                live = await visible(4)
                seen = await resumed.until(live)
        assert ids(seen) == [str(missed[0]), str(missed[2]), str(live)]
        assert [m.seq for m in seen] == sorted(m.seq for m in seen)

        # The same with ?last_event_id= while no other stream of the org is open.
        async with open_stream(base, top.access_token, params={"last_event_id": got.seq}) as again:
            assert ids(await again.until(live)) == [str(missed[0]), str(missed[2]), str(live)]
            # The header wins over the query parameter (EventSource keeps the URL and sends
            # the header on its reconnects).
        async with open_stream(
            base, top.access_token, last_event_id=seen[1].seq, params={"last_event_id": 0}
        ) as latest:
            assert ids(await latest.until(live)) == [str(live)]
        # Without Last-Event-ID a stream starts with the next event.
        async with open_stream(base, top.access_token) as fresh:
            after = await visible(5)
            assert ids(await fresh.until(after)) == [str(after)]
        # An id beyond the last seq (another database, a reset) counts as the last one.
        async with open_stream(base, top.access_token, last_event_id=10**12) as beyond:
            later = await visible(6)
            assert ids(await beyond.until(later)) == [str(later)]


async def test_other_orgs_and_clips_the_user_may_not_see_never_appear(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, second = await make_org(), await make_org("Second")
    rep, other, coach = (
        await org.add_user("rep"), await org.add_user("rep"), await org.add_user("coach"),
    )  # fmt: skip
    stranger = await second.add_user("rep")
    theirs = (await create_clip(client, other, visibility="private"))["clip"]["id"]
    mine = (await create_clip(client, rep, visibility="private"))["clip"]["id"]
    asked = await playable_clip(app, client, other, visibility="private")
    declined = await playable_clip(app, client, other, visibility="private")
    doomed = (await create_clip(client, other))["clip"]["id"]
    shared = (await create_clip(client, other))["clip"]["id"]
    r = await request_review(client, other, asked, rep)
    assert r.status_code == 201, r.text
    r = await request_review(client, other, declined, rep)
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/v1/review-requests/{r.json()['id']}/decline",
        json={"reason": "Away"},
        headers=rep.headers,
    )
    assert r.status_code == 200, r.text
    foreign = (await create_clip(client, stranger))["clip"]["id"]

    async with (
        serving(app) as base,
        open_stream(base, rep.access_token) as rep_stream,
        open_stream(base, coach.access_token) as coach_stream,
        open_stream(base, stranger.access_token) as stranger_stream,
    ):
        # The second org's event reaches its own user (so it was read and fanned out)...
        elsewhere = await record(app, second.org_id, "clip.ready", clip_id=foreign)
        assert about(await stranger_stream.until(elsewhere)) == [("clip.ready", foreign)]
        await record(app, org.org_id, "clip.ready", clip_id=theirs)
        await record(app, org.org_id, "clip.ready", clip_id=mine)
        await record(app, org.org_id, "clip.ready", clip_id=asked)
        await record(app, org.org_id, "clip.ready", clip_id=declined)
        await record(app, org.org_id, "clip.ready", {"id": "nothing"})  # about no clip: nobody
        r = await client.delete(f"/v1/clips/{doomed}", headers=other.headers)
        assert r.status_code == 204, r.text
        await record(app, org.org_id, "clip.ready", clip_id=doomed)  # gone: nobody
        marker = await record(app, org.org_id, "clip.ready", clip_id=shared)
        seen_by_rep = about(await rep_stream.until(marker))
        seen_by_coach = about(await coach_stream.until(marker))
        # ...and never the first org's, nor the first org its.
        leftover = await record(app, second.org_id, "clip.ready", clip_id=foreign)
        assert ids(await stranger_stream.until(leftover)) == [str(leftover)]

    # Their own clip, the clip they were asked to review (not the one they declined), the
    # deletion of a clip they could see, the shared clip; coaches see every clip.
    assert seen_by_rep == [
        ("clip.ready", mine),
        ("clip.ready", asked),
        ("clip.deleted", doomed),
        ("clip.ready", shared),
    ]
    assert seen_by_coach == [
        ("clip.ready", theirs),
        ("clip.ready", mine),
        ("clip.ready", asked),
        ("clip.ready", declined),
        ("clip.deleted", doomed),
        ("clip.ready", shared),
    ]


async def test_a_notification_reaches_only_its_recipient(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    alice, bob = await org.add_user("rep", "Alice"), await org.add_user("rep", "Bob")
    shared = (await create_clip(client, alice))["clip"]["id"]
    async with (
        serving(app) as base,
        open_stream(base, alice.access_token) as alice_stream,
        open_stream(base, bob.access_token) as bob_stream,
        open_stream(base, org.admin.access_token) as admin_stream,
    ):
        note = await record(app, org.org_id, "notification.created", {"id": "n1"}, user_id=alice.id)
        marker = await record(app, org.org_id, "clip.ready", clip_id=shared)
        assert ids(await alice_stream.until(marker)) == [str(note), str(marker)]
        assert ids(await bob_stream.until(marker)) == [str(marker)]
        assert ids(await admin_stream.until(marker)) == [str(marker)]


async def test_the_stream_ends_with_auth_expired_when_the_token_expires(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = (await create_clip(client, rep))["clip"]["id"]
    hub: EventHub = app.state.event_hub
    # The settings' shortest lifetime is 30 s: a token issued directly lives 2 s.
    token = issue_access_token(
        user_id=uuid.UUID(rep.id),
        org_id=uuid.UUID(org.org_id),
        role="rep",
        secret=TEST_SECRET,
        ttl_s=2,
    )
    async with serving(app) as base, open_stream(base, token) as stream:
        event_id = await record(app, org.org_id, "clip.ready", clip_id=clip_id)
        before, end = await stream.rest(timeout=10)
        assert ids([before]) == [str(event_id)]
        assert (end.event, end.json(), end.id) == ("auth_expired", {"code": "token_expired"}, None)
        await eventually(lambda: hub.stream_count == 0, what="the stream to be dropped")
        # Reconnecting with the same token is refused: refresh first.
        async with httpx.AsyncClient(base_url=base) as plain:
            again = await plain.get(
                "/v1/events/stream", headers={"Authorization": f"Bearer {token}"}
            )
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "token_expired"


async def test_a_deactivated_users_stream_ends(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    clip_id = (await create_clip(client, top))["clip"]["id"]
    async with (
        serving(app) as base,
        open_stream(base, rep.access_token) as rep_stream,
        open_stream(base, top.access_token) as top_stream,
    ):
        r = await client.patch(
            f"/v1/users/{rep.id}", json={"is_active": False}, headers=org.admin.headers
        )
        assert r.status_code == 200, r.text
        # The next wake-up re-reads the streams' users before handing out its events.
        event_id = await record(app, org.org_id, "clip.ready", clip_id=clip_id)
        assert ids(await top_stream.until(event_id)) == [str(event_id)]
        (end,) = await rep_stream.rest()
    assert (end.event, end.json()) == ("auth_expired", {"code": "invalid_token"})


async def test_a_client_that_goes_away_leaves_nothing_behind(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    hub: EventHub = app.state.event_hub

    def hub_tasks() -> list[str]:
        return [
            t.get_name() for t in asyncio.all_tasks() if t.get_name() == f"events-hub-{org.org_id}"
        ]

    async with serving(app) as base:
        async with (
            open_stream(base, rep.access_token),
            open_stream(base, rep.access_token),
            open_stream(base, top.access_token),
        ):
            assert (hub.stream_count, hub.org_count) == (3, 1)
            assert len(hub_tasks()) == 1
        # The connections closed: the server notices, cancels each stream and forgets it.
        await eventually(lambda: hub.stream_count == 0, what="the streams to be dropped")
        assert hub.org_count == 0
        await eventually(lambda: not hub_tasks(), what="the org's reader task to end")
        # Nothing left behind keeps events from reaching the next stream.
        clip_id = (await create_clip(client, rep))["clip"]["id"]
        async with open_stream(base, top.access_token) as stream:
            event_id = await record(app, org.org_id, "clip.ready", clip_id=clip_id)
            assert ids(await stream.until(event_id)) == [str(event_id)]


async def test_a_stream_that_falls_too_far_behind_is_closed(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = (await create_clip(client, rep))["clip"]["id"]
    hub: EventHub = app.state.event_hub
    hub.queue_limit = 3
    user = await load_user(app, rep.id)
    async with app.state.sessionmaker() as session:
        current = await events.last_seq(session, user.org_id)
    sub = hub.subscribe(user, current, current)  # and never read
    try:
        for n in range(5):
            await record(app, org.org_id, "clip.ready", {"id": clip_id, "n": n}, clip_id=clip_id)
        await eventually(lambda: sub.ended == "lagging", what="the stream to be closed")
        # What was queued is still delivered; the client resumes from its last id.
        assert [seq for seq, _ in sub.frames] == [current + 1, current + 2, current + 3]
    finally:
        hub.unsubscribe(sub)
    assert hub.stream_count == 0


async def test_events_committed_by_another_process_arrive(
    app: Any, client: httpx.AsyncClient, make_org: Any, database_url: str
) -> None:
    """A hub that hears nothing of this process's commits: PostgreSQL wakes it with NOTIFY
    through its LISTEN connection, SQLite with its poll."""
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = (await create_clip(client, rep))["clip"]["id"]
    user = await load_user(app, rep.id)
    postgres = database_url.startswith("postgresql")
    # On PostgreSQL only NOTIFY may wake it (its poll runs only while LISTEN is down).
    hub = EventHub(app.state.engine, local_wakeups=False, poll_interval_s=3600 if postgres else 0.2)
    await hub.start()
    try:
        if postgres:
            await asyncio.wait_for(hub.listening.wait(), 10)
        async with app.state.sessionmaker() as session:
            current = await events.last_seq(session, user.org_id)
        frames = event_stream(hub, user, current, current, None)
        assert (await anext(frames)).startswith(b"retry:")
        pending = asyncio.ensure_future(anext(frames))
        event_id = await record(app, org.org_id, "clip.ready", clip_id=clip_id)
        data = await asyncio.wait_for(pending, 10)
        assert f'"id":"{event_id}"'.encode() in data
        assert data.startswith(f"id: {current + 1}\nevent: clip.ready\n".encode())
        await frames.aclose()
        assert hub.stream_count == 0
    finally:
        await hub.close()


async def test_a_wake_up_costs_the_same_queries_for_one_stream_or_many(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    viewers = [await org.add_user("rep") for _ in range(8)]
    clip_id = await playable_clip(app, client, owner, visibility="private")
    for viewer in viewers:  # each may see the private clip: the reviewers' query runs
        assert (await request_review(client, owner, clip_id, viewer)).status_code == 201

    def reads_of(statements: list[str]) -> list[str]:
        tables = ("FROM users", "FROM clips", "FROM review_requests")
        return [s for s in statements if any(t in s for t in tables)]

    async def one_event(streams: list[Any]) -> list[str]:
        with statements_during(app) as statements:
            event_id = await record(app, org.org_id, "clip.ready", clip_id=clip_id)
            for stream in streams:
                assert ids(await stream.until(event_id)) == [str(event_id)]
        return reads_of(statements)

    async with serving(app) as base:
        async with open_stream(base, viewers[0].access_token) as alone:
            single = await one_event([alone])
        async with (
            open_stream(base, viewers[0].access_token) as s0, open_stream(base, viewers[1].access_token) as s1,
            open_stream(base, viewers[2].access_token) as s2, open_stream(base, viewers[3].access_token) as s3,
            open_stream(base, viewers[4].access_token) as s4, open_stream(base, viewers[5].access_token) as s5,
            open_stream(base, viewers[6].access_token) as s6, open_stream(base, viewers[7].access_token) as s7,
            open_stream(base, owner.access_token) as s8, open_stream(base, owner.access_token) as s9,
        ):  # fmt: skip
            many = await one_event([s0, s1, s2, s3, s4, s5, s6, s7, s8, s9])
    # Users once, clips once, reviewers once: per wake-up, not per stream.
    assert len(single) == len(many) == 3, many


async def test_errors_are_json_before_the_stream_starts(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    r = await client.get("/v1/events/stream")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await client.get(
        "/v1/events/stream", headers={**org.admin.headers, "Last-Event-ID": "yesterday"}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await client.get(
        "/v1/events/stream", params={"last_event_id": -1}, headers=org.admin.headers
    )
    assert r.status_code == 422


async def test_the_schema_declares_an_event_stream(client: httpx.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"]["/v1/events/stream"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/event-stream"}
    assert {"401", "422", "503"} <= set(operation["responses"])
    assert operation["summary"]
    assert {p["name"] for p in operation["parameters"]} == {"last_event_id", "Last-Event-ID"}


async def test_a_new_org_stream_sees_an_event_committed_while_it_connected(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    """The start position is read before the stream joins the hub: what commits in between
    still arrives (the hub reads from that position when the org is new to it)."""
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = (await create_clip(client, rep))["clip"]["id"]
    user = await load_user(app, rep.id)
    hub: EventHub = app.state.event_hub
    async with app.state.sessionmaker() as session:
        current = await events.last_seq(session, user.org_id)
    event_id = await record(app, org.org_id, "clip.ready", clip_id=clip_id)
    frames = event_stream(hub, user, current, current, None)
    try:
        assert (await anext(frames)).startswith(b"retry:")
        data = await asyncio.wait_for(anext(frames), 10)
        assert f'"id":"{event_id}"'.encode() in data
    finally:
        await frames.aclose()
    assert hub.stream_count == 0
