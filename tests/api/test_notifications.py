"""Notifications are produced exactly for their causes, never for one's own actions."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.feedback_helpers import playable_clip, post_feedback
from tests.helpers.api import request_review
from tests.helpers.sql_count import queries, statements_during


async def _inbox(client: httpx.AsyncClient, actor: Any, **params: Any) -> list[tuple[str, str]]:
    r = await client.get("/v1/notifications", params=params, headers=actor.headers)
    assert r.status_code == 200, r.text
    return [(n["kind"], n["actor"]["id"] if n["actor"] else "") for n in r.json()["items"]]


async def _drain(client: httpx.AsyncClient, *actors: Any) -> None:
    for actor in actors:
        r = await client.post("/v1/notifications/read", json={"all": True}, headers=actor.headers)
        assert r.status_code == 200 and r.json()["unread_count"] == 0


async def test_each_cause_notifies_exactly_its_people(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, author, replier, mentioned, idle = [await org.add_user("rep") for _ in range(5)]
    everyone = (owner, author, replier, mentioned, idle)
    clip_id = await playable_clip(app, client, owner)

    async def unread() -> dict[str, list[tuple[str, str]]]:
        seen = {a.id: await _inbox(client, a, unread=True) for a in everyone}
        await _drain(client, *everyone)
        return {k: v for k, v in seen.items() if v}

    # New feedback with a mention: the owner and the mentioned user, each once.
    root = (await post_feedback(client, author, clip_id, mentions=[mentioned.id, author.id])).json()
    assert await unread() == {
        owner.id: [("feedback_on_my_clip", author.id)],
        mentioned.id: [("mention", author.id)],
    }
    # A reply: the thread's writer and the clip's owner.
    await post_feedback(client, replier, clip_id, parent_id=root["id"])
    assert await unread() == {
        author.id: [("feedback_reply", replier.id)],
        owner.id: [("feedback_on_my_clip", replier.id)],
    }
    # The owner replies: everyone who wrote in the thread, not the owner.
    await post_feedback(client, owner, clip_id, parent_id=root["id"])
    assert await unread() == {
        author.id: [("feedback_reply", owner.id)],
        replier.id: [("feedback_reply", owner.id)],
    }
    # Feedback by the owner on their own clip: nobody.
    await post_feedback(client, owner, clip_id)
    assert await unread() == {}
    # Resolving: the author, unless the author resolves it.
    await client.post(f"/v1/feedback/{root['id']}/resolve", headers=owner.headers)
    assert await unread() == {author.id: [("feedback_resolved", owner.id)]}
    await client.post(f"/v1/feedback/{root['id']}/resolve", headers=owner.headers)  # no-op
    await client.delete(f"/v1/feedback/{root['id']}/resolve", headers=author.headers)
    await client.post(f"/v1/feedback/{root['id']}/resolve", headers=author.headers)
    # Helpful marks, edits and reopening notify nobody.
    await client.post(f"/v1/feedback/{root['id']}/reactions/helpful", headers=idle.headers)
    await client.patch(
        f"/v1/feedback/{root['id']}", json={"body": "edited"}, headers=author.headers
    )
    assert await unread() == {}

    # Reviews: the reviewer when asked; the requester (and the clip's owner) when answered.
    r = await request_review(client, owner, clip_id, idle)
    assert await unread() == {idle.id: [("review_requested", owner.id)]}
    await client.post(
        f"/v1/review-requests/{r.json()['id']}/complete",
        json={"summary": "ok"},
        headers=idle.headers,
    )
    assert await unread() == {owner.id: [("review_completed", idle.id)]}
    r = await request_review(client, owner, clip_id, idle)
    await _drain(client, idle)
    await client.post(
        f"/v1/review-requests/{r.json()['id']}/decline", json={}, headers=idle.headers
    )
    assert await unread() == {owner.id: [("review_declined", idle.id)]}


async def test_listing_and_marking_read(app: Any, client: httpx.AsyncClient, make_org: Any) -> None:
    org, other = await make_org(), await make_org("Globex")
    owner, peer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    for i in range(3):
        await post_feedback(client, peer, clip_id, body=f"note {i}")
    r = await client.get("/v1/notifications", headers=owner.headers)
    items = r.json()["items"]
    assert [n["data"]["excerpt"] for n in items] == ["note 2", "note 1", "note 0"]
    assert items[0]["clip_id"] == clip_id and items[0]["feedback_id"]
    assert items[0]["data"]["clip_title"] and items[0]["read_at"] is None
    assert (await client.get("/v1/notifications", headers=other.admin.headers)).json()[
        "items"
    ] == []

    # Someone else's ids are ignored; mine are marked.
    r = await client.post(
        "/v1/notifications/read", json={"ids": [items[0]["id"]]}, headers=peer.headers
    )
    assert r.json() == {"marked": 0, "unread_count": 0}
    r = await client.post(
        "/v1/notifications/read", json={"ids": [items[0]["id"]]}, headers=owner.headers
    )
    assert r.json() == {"marked": 1, "unread_count": 2}
    unread = (await client.get("/v1/notifications?unread=true", headers=owner.headers)).json()
    assert [n["id"] for n in unread["items"]] == [items[1]["id"], items[2]["id"]]
    read = (await client.get("/v1/notifications?unread=false", headers=owner.headers)).json()
    assert [n["id"] for n in read["items"]] == [items[0]["id"]]
    page = (await client.get("/v1/notifications?limit=2", headers=owner.headers)).json()
    assert page["next_cursor"]
    rest = await client.get(
        f"/v1/notifications?limit=2&cursor={page['next_cursor']}", headers=owner.headers
    )
    assert [n["id"] for n in rest.json()["items"]] == [items[2]["id"]]

    for bad in ({}, {"ids": [], "all": True}, {"all": False}, {"ids": ["nope"]}):
        r = await client.post("/v1/notifications/read", json=bad, headers=owner.headers)
        assert r.status_code == 422, bad
    r = await client.post("/v1/notifications/read", json={"all": True}, headers=owner.headers)
    assert r.json() == {"marked": 2, "unread_count": 0}


async def test_unread_count_is_the_callers_in_one_query(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Globex")
    owner, peer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    url = "/v1/notifications/unread-count"

    assert (await client.get(url, headers=owner.headers)).json() == {"unread": 0}
    for i in range(3):
        await post_feedback(client, peer, clip_id, body=f"note {i}")
    with statements_during(app) as statements:
        r = await client.get(url, headers=owner.headers)
    assert r.status_code == 200 and r.json() == {"unread": 3}
    assert len(queries(statements)) == 1, statements  # the count (the caller aside)
    # Only the caller's: the author and another org have none.
    assert (await client.get(url, headers=peer.headers)).json() == {"unread": 0}
    assert (await client.get(url, headers=other.admin.headers)).json() == {"unread": 0}

    newest = (await client.get("/v1/notifications", headers=owner.headers)).json()["items"][0]
    await client.post("/v1/notifications/read", json={"ids": [newest["id"]]}, headers=owner.headers)
    assert (await client.get(url, headers=owner.headers)).json() == {"unread": 2}
    await client.post("/v1/notifications/read", json={"all": True}, headers=owner.headers)
    assert (await client.get(url, headers=owner.headers)).json() == {"unread": 0}
    r = await client.get(url)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
