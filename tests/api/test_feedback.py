"""Timestamped, threaded feedback through the HTTP API: ordering, threading, validation,
edit/delete/resolve/helpful rules, tenant isolation and the constant statement count."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from app.feedback.schemas import ThreadOut
from app.pagination import Page
from tests.api.feedback_helpers import DURATION_MS, playable_clip, post_feedback, statements_during
from tests.helpers.api import create_clip


async def _threads(client: httpx.AsyncClient, actor: Any, clip_id: str, **params: Any) -> Any:
    r = await client.get(f"/v1/clips/{clip_id}/feedback", params=params, headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_threads_in_playback_order_with_replies(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner = await org.add_user("rep", name="Rita Rep")
    peer = await org.add_user("top_performer", name="Tom Top")
    clip_id = await playable_clip(app, client, owner)

    ids = {}
    for name, ts in (("late", 5000), ("early", 1000), ("middle", 3000), ("early2", 1000)):
        r = await post_feedback(client, peer, clip_id, body=name, timestamp_ms=ts)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    created = r.json()
    assert created["author"] == {"id": peer.id, "name": "Tom Top", "role": "top_performer"}
    assert created["parent_id"] is None and created["deleted"] is False

    # A reply takes its thread's position whatever timestamp it sends; a reply to a reply
    # joins the same (root) thread.
    r = await post_feedback(
        client, owner, clip_id, body="r1", parent_id=ids["middle"], timestamp_ms=9
    )
    assert r.status_code == 201 and r.json()["timestamp_ms"] == 3000
    assert r.json()["parent_id"] == ids["middle"]
    r = await post_feedback(client, peer, clip_id, body="r2", parent_id=r.json()["id"])
    assert r.status_code == 201 and r.json()["parent_id"] == ids["middle"]

    page = await _threads(client, owner, clip_id)
    # The page is written without the response model; it must still match it exactly.
    validated = Page[ThreadOut].model_validate(page)
    assert validated.model_dump(mode="json") == page
    assert [t["body"] for t in page["items"]] == ["early", "early2", "middle", "late"]
    middle = page["items"][2]
    assert [x["body"] for x in middle["replies"]] == ["r1", "r2"]
    assert middle["reply_count"] == 2 and page["items"][0]["reply_count"] == 0
    assert middle["replies"][0]["author"]["name"] == "Rita Rep"

    # Cursor pagination walks the same order without repeats.
    first = await _threads(client, owner, clip_id, limit=3)
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = await _threads(client, owner, clip_id, limit=3, cursor=first["next_cursor"])
    assert [t["body"] for t in rest["items"]] == ["late"] and rest["next_cursor"] is None

    # Filters: skill and author of the thread.
    await post_feedback(client, owner, clip_id, body="tagged", skill="demo", timestamp_ms=10)
    tagged = await _threads(client, owner, clip_id, skill="demo")
    assert [t["body"] for t in tagged["items"]] == ["tagged"]
    by_owner = await _threads(client, owner, clip_id, author_id=owner.id)
    assert [t["body"] for t in by_owner["items"]] == ["tagged"]


async def test_ranges_bodies_and_references_are_validated(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Globex")
    owner, peer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)

    async def code(**body: Any) -> tuple[int, str | None]:
        r = await post_feedback(client, peer, clip_id, **body)
        return r.status_code, r.json().get("error", {}).get(
            "code"
        ) if r.status_code != 201 else None

    r = await post_feedback(client, peer, clip_id, timestamp_ms=1000, end_ms=2500)
    assert r.status_code == 201 and (r.json()["timestamp_ms"], r.json()["end_ms"]) == (1000, 2500)
    assert (await code(timestamp_ms=DURATION_MS))[0] == 201  # the last moment is valid
    assert await code(timestamp_ms=DURATION_MS + 1) == (422, "position_out_of_range")
    assert await code(timestamp_ms=1000, end_ms=1000) == (422, "invalid_range")
    assert await code(timestamp_ms=1000, end_ms=DURATION_MS + 1) == (422, "position_out_of_range")
    assert await code(timestamp_ms=-1) == (422, "validation_error")
    assert await code(timestamp_ms=None) == (422, "missing_timestamp")
    assert await code(body="") == (422, "validation_error")
    assert await code(body="   \n") == (422, "validation_error")
    assert await code(body="x" * 5001) == (422, "validation_error")
    assert (await code(body="x" * 5000))[0] == 201
    assert await code(body="a\x00b") == (422, "validation_error")
    assert await code(skill="urgency") == (422, "unknown_skill")  # a closing skill
    assert (await code(skill="demo"))[0] == 201
    assert await code(parent_id=str(uuid.uuid4())) == (422, "invalid_parent")
    assert await code(mentions=[other.admin.id]) == (422, "invalid_mention")
    assert await code(unknown_field=1) == (422, "validation_error")

    # Bodies are stored exactly as written (clients escape; we never render HTML).
    html = "<script>alert('x')</script> & <b>bold</b>"
    r = await post_feedback(client, peer, clip_id, body=html)
    assert r.json()["body"] == html
    listed = {t["id"]: t["body"] for t in (await _threads(client, owner, clip_id))["items"]}
    assert listed[r.json()["id"]] == html

    # A mentioned user must be able to see the clip.
    private = await playable_clip(app, client, owner, visibility="private")
    third = await org.add_user("rep")
    r = await post_feedback(client, owner, private, mentions=[third.id])
    assert r.status_code == 422 and r.json()["error"]["code"] == "mention_cannot_see_clip"
    coach = await org.add_user("coach")
    r = await post_feedback(client, owner, private, mentions=[coach.id])
    assert r.status_code == 201 and r.json()["mentions"] == [coach.id]
    listed_private = (await _threads(client, coach, private))["items"]
    assert [t["mentions"] for t in listed_private] == [[coach.id]]

    # A video reply must be the author's own clip of kind "feedback".
    video_reply = (await create_clip(client, peer, kind="feedback"))["clip"]["id"]
    someone_elses = (await create_clip(client, owner, kind="feedback"))["clip"]["id"]
    a_pitch = (await create_clip(client, peer, kind="pitch"))["clip"]["id"]
    assert (await code(response_clip_id=video_reply))[0] == 201
    assert await code(response_clip_id=someone_elses) == (422, "invalid_response_clip")
    assert await code(response_clip_id=a_pitch) == (422, "invalid_response_clip")

    # Not yet watchable: 409.
    pending = (await create_clip(client, owner))["clip"]["id"]
    r = await post_feedback(client, peer, pending)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_viewable"


def _shape(kind: str, points: Any = None, color: str = "#ff0000") -> dict[str, Any]:
    return {"type": kind, "points": points or [[0.1, 0.2], [0.5, 0.6]], "color": color}


async def test_annotations_are_validated(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    good = {
        "shapes": [
            _shape("arrow"),
            _shape("rect"),
            _shape("ellipse"),
            _shape("line"),
            _shape("freehand", [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]], "#00AAff"),
        ]
    }
    r = await post_feedback(client, owner, clip_id, annotation=good)
    assert r.status_code == 201, r.text
    assert r.json()["annotation"]["shapes"][4]["points"][2] == [1.0, 1.0]

    three = [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]
    invalid = [
        {"shapes": [_shape("circle")]},  # unknown kind
        {"shapes": [_shape("arrow", three)]},  # each kind has its point count
        {"shapes": [_shape("line", [[0.1, 0.1]])]},
        {"shapes": [_shape("rect", three)]},
        {"shapes": [_shape("ellipse", [[0.1, 0.1]])]},
        {"shapes": [_shape("freehand", [[0.1, 0.1]])]},
        {"shapes": [_shape("rect", [[0.1, 0.1], [1.01, 0.5]])]},  # outside the frame
        {"shapes": [_shape("arrow", [[-0.1, 0.1], [0.5, 0.5]])]},
        {"shapes": [_shape("line", [[0.1, 0.1, 0.1], [0.5, 0.5]])]},  # not a pair
        {"shapes": [_shape("rect", color="red")]},
        {"shapes": [_shape("rect", color="#ff00001")]},
        {"shapes": [_shape("rect") | {"width": 3}]},
        {"shapes": []},
        {"shapes": [_shape("line")] * 51},
        {"shapes": [_shape("line")], "extra": True},
        # Under 50 shapes and 1,000 points each, but over 16 KB.
        {"shapes": [_shape("freehand", [[0.123456, 0.654321]] * 400)] * 3},
        "not an object",
    ]
    for annotation in invalid:
        r = await post_feedback(client, owner, clip_id, annotation=annotation)
        assert r.status_code == 422, (annotation, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    assert len((await _threads(client, owner, clip_id))["items"]) == 1


async def test_edit_and_delete_rules_with_tombstones(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, author, other = [await org.add_user("rep") for _ in range(3)]
    coach = await org.add_user("coach")
    clip_id = await playable_clip(app, client, owner)
    root = (await post_feedback(client, author, clip_id, body="first take")).json()
    assert root["edited_at"] is None

    url = f"/v1/feedback/{root['id']}"
    assert (await client.patch(url, json={"body": "x"}, headers=owner.headers)).status_code == 403
    r = await client.patch(
        url,
        json={"body": "second take", "timestamp_ms": 2000, "end_ms": 4000},
        headers=author.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["body"] == "second take" and r.json()["edited_at"] is not None
    assert (r.json()["timestamp_ms"], r.json()["end_ms"]) == (2000, 4000)
    r = await client.patch(url, json={"end_ms": 1000}, headers=author.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_range"

    reply = (await post_feedback(client, owner, clip_id, body="on it", parent_id=root["id"])).json()
    assert reply["timestamp_ms"] == 2000
    # Moving a thread moves its replies with it.
    await client.patch(url, json={"timestamp_ms": 2500}, headers=author.headers)
    thread = (await _threads(client, owner, clip_id))["items"][0]
    assert thread["replies"][0]["timestamp_ms"] == 2500

    # Others may not delete; the author may: with a reply left, the root is a tombstone.
    assert (await client.delete(url, headers=other.headers)).status_code == 403
    assert (await client.delete(url, headers=author.headers)).status_code == 204
    thread = (await _threads(client, owner, clip_id))["items"][0]
    assert thread["deleted"] is True and thread["body"] == "" and thread["annotation"] is None
    assert [x["body"] for x in thread["replies"]] == ["on it"]
    # A tombstone cannot be edited, resolved or deleted again.
    assert (await client.patch(url, json={"body": "b"}, headers=author.headers)).status_code == 404
    assert (await client.post(f"{url}/resolve", headers=owner.headers)).status_code == 404
    # A coach deletes the last reply: the tombstone goes with it.
    assert (
        await client.delete(f"/v1/feedback/{reply['id']}", headers=coach.headers)
    ).status_code == 204
    assert (await _threads(client, owner, clip_id))["items"] == []

    # Without replies, deleting removes the item outright.
    lone = (await post_feedback(client, author, clip_id)).json()
    assert (
        await client.delete(f"/v1/feedback/{lone['id']}", headers=author.headers)
    ).status_code == 204
    assert (await _threads(client, owner, clip_id))["items"] == []
    missing = f"/v1/feedback/{lone['id']}"
    assert (await client.delete(missing, headers=author.headers)).status_code == 404


async def test_resolve_and_helpful_permissions_and_idempotency(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, author, other = [await org.add_user("rep") for _ in range(3)]
    coach = await org.add_user("coach")
    clip_id = await playable_clip(app, client, owner)
    root = (await post_feedback(client, author, clip_id)).json()
    reply = (await post_feedback(client, owner, clip_id, parent_id=root["id"])).json()
    resolve = f"/v1/feedback/{root['id']}/resolve"

    assert (await client.post(resolve, headers=other.headers)).status_code == 403
    r = await client.post(f"/v1/feedback/{reply['id']}/resolve", headers=owner.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_a_thread"
    for actor in (owner, author, coach):
        r = await client.post(resolve, headers=actor.headers)
        assert r.status_code == 200, r.text
        # Idempotent: the first resolution is kept.
        assert r.json()["resolved_by"]["id"] == owner.id and r.json()["resolved_at"]
    assert [t["id"] for t in (await _threads(client, owner, clip_id, resolved=True))["items"]] == [
        root["id"]
    ]
    assert (await _threads(client, owner, clip_id, resolved=False))["items"] == []
    assert (await client.delete(resolve, headers=other.headers)).status_code == 403
    for _ in range(2):
        r = await client.delete(resolve, headers=author.headers)
        assert r.status_code == 200 and r.json()["resolved_at"] is None
        assert r.json()["resolved_by"] is None

    helpful = f"/v1/feedback/{root['id']}/reactions/helpful"
    assert (await client.post(helpful, headers=author.headers)).status_code == 403  # own
    for actor in (owner, other, other):
        r = await client.post(helpful, headers=actor.headers)
        assert r.status_code == 200 and r.json()["reacted_by_me"] is True
    assert r.json()["helpful_count"] == 2
    thread = (await _threads(client, other, clip_id))["items"][0]
    assert thread["helpful_count"] == 2 and thread["reacted_by_me"] is True
    thread = (await _threads(client, coach, clip_id))["items"][0]
    assert thread["reacted_by_me"] is False
    for _ in range(2):
        r = await client.delete(helpful, headers=other.headers)
        assert r.status_code == 200 and r.json() == {
            "feedback_id": root["id"], "helpful_count": 1, "reacted_by_me": False,
        }  # fmt: skip
    # Replies can be helpful too.
    r = await client.post(f"/v1/feedback/{reply['id']}/reactions/helpful", headers=author.headers)
    assert r.json()["helpful_count"] == 1
    thread = (await _threads(client, author, clip_id))["items"][0]
    assert thread["replies"][0]["helpful_count"] == 1 and thread["replies"][0]["reacted_by_me"]


async def test_other_org_sees_nothing(app: Any, client: httpx.AsyncClient, make_org: Any) -> None:
    org, other = await make_org(), await make_org("Globex")
    owner = await org.add_user("rep")
    stranger = other.admin
    clip_id = await playable_clip(app, client, owner)
    item = (await post_feedback(client, owner, clip_id)).json()
    url = f"/v1/feedback/{item['id']}"
    h = stranger.headers
    assert (await client.get(f"/v1/clips/{clip_id}/feedback", headers=h)).status_code == 404
    assert (await post_feedback(client, stranger, clip_id)).status_code == 404
    assert (await client.patch(url, json={"body": "x"}, headers=h)).status_code == 404
    assert (await client.delete(url, headers=h)).status_code == 404
    assert (await client.post(f"{url}/resolve", headers=h)).status_code == 404
    assert (await client.post(f"{url}/reactions/helpful", headers=h)).status_code == 404
    # A reply cannot point at another org's thread either.
    theirs = await playable_clip(app, client, stranger)
    r = await post_feedback(client, stranger, theirs, parent_id=item["id"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parent"


async def test_private_clip_opens_to_a_named_reviewer_only(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, reviewer, bystander = [await org.add_user("rep") for _ in range(3)]
    clip_id = await playable_clip(app, client, owner, visibility="private")
    for actor in (reviewer, bystander):
        assert (await client.get(f"/v1/clips/{clip_id}", headers=actor.headers)).status_code == 404
        assert (await post_feedback(client, actor, clip_id)).status_code == 404

    r = await client.post(
        f"/v1/clips/{clip_id}/review-requests",
        json={"reviewer_id": reviewer.id},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    assert (await client.get(f"/v1/clips/{clip_id}", headers=reviewer.headers)).status_code == 200
    assert (await post_feedback(client, reviewer, clip_id)).status_code == 201
    assert len((await _threads(client, reviewer, clip_id))["items"]) == 1
    assert (await client.get(f"/v1/clips/{clip_id}", headers=bystander.headers)).status_code == 404
    listed = await client.get("/v1/clips", headers=reviewer.headers)
    assert clip_id in [c["id"] for c in listed.json()["items"]]

    # Declining hands the access back.
    r = await client.post(
        f"/v1/review-requests/{r.json()['id']}/decline", json={}, headers=reviewer.headers
    )
    assert r.status_code == 200
    assert (await client.get(f"/v1/clips/{clip_id}", headers=reviewer.headers)).status_code == 404


async def test_idempotency_key_posts_once(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, peer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    headers = peer.headers | {"Idempotency-Key": "note-1"}
    body = {"body": "Great opener", "timestamp_ms": 500}
    first = await client.post(f"/v1/clips/{clip_id}/feedback", json=body, headers=headers)
    again = await client.post(f"/v1/clips/{clip_id}/feedback", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    changed = await client.post(
        f"/v1/clips/{clip_id}/feedback", json=body | {"body": "other"}, headers=headers
    )
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    assert len((await _threads(client, owner, clip_id))["items"]) == 1
    notes = (await client.get("/v1/notifications", headers=owner.headers)).json()["items"]
    assert len(notes) == 1


@pytest.mark.parametrize("threads", [1, 12])
async def test_listing_runs_a_constant_number_of_statements(
    app: Any, client: httpx.AsyncClient, make_org: Any, threads: int
) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    peers = [await org.add_user("rep") for _ in range(2)]
    clip_id = await playable_clip(app, client, owner)
    for i in range(threads):
        root = (await post_feedback(client, peers[0], clip_id, timestamp_ms=i * 100)).json()
        for _ in range(3):
            reply = await post_feedback(client, peers[1], clip_id, parent_id=root["id"])
            await client.post(
                f"/v1/feedback/{reply.json()['id']}/reactions/helpful", headers=owner.headers
            )
        await client.post(f"/v1/feedback/{root['id']}/reactions/helpful", headers=owner.headers)

    with statements_during(app) as statements:
        page = await _threads(client, owner, clip_id)
    assert len(page["items"]) == threads
    assert all(t["reply_count"] == 3 and t["helpful_count"] == 1 for t in page["items"])
    queries = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    # The caller, the clip's visibility, then the page's threads with their replies and the
    # caller's helpful marks in one statement.
    assert len(queries) == 3, statements
