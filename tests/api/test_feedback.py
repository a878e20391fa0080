"""Timestamped, threaded feedback through the HTTP API: ordering, threading, validation,
edit/delete/resolve/helpful rules, tenant isolation and the constant statement count."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.config import Settings
from app.feedback.models import Feedback
from app.feedback.schemas import ThreadOut
from app.openapi_export import openapi_document
from app.pagination import Page
from tests.api.feedback_helpers import DURATION_MS, playable_clip, post_feedback, statements_during
from tests.helpers.api import create_clip
from tests.helpers.sql_count import queries


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


def _points(n: int) -> list[list[float]]:
    """Full-precision coordinates, as a client dividing pixels by the frame's size sends."""
    rng = random.Random(n)
    return [[rng.random() / 1000, rng.random() / 1000] for _ in range(n)]


def _label(text: str) -> dict[str, Any]:
    return _shape("text", [[0.1, 0.8]]) | {"text": text}


def _too_many_points(r: httpx.Response, limit: int, got: int) -> bool:
    error = r.json()["error"]
    return (
        r.status_code == 422
        and error["code"] == "validation_error"
        and error["details"][0]["loc"] == ["body", "annotation"]
        and f"at most {limit} points across its shapes, got {got}" in error["details"][0]["msg"]
    )


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
        # Under 50 shapes, 1,000 points each and 2,000 in all, but over 128 KiB as JSON.
        {"shapes": [_shape("freehand", _points(976))] * 2 + [_label("\U0001f600" * 280)] * 48},
        "not an object",
    ]
    for annotation in invalid:
        r = await post_feedback(client, owner, clip_id, annotation=annotation)
        assert r.status_code == 422, (annotation, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    assert len((await _threads(client, owner, clip_id))["items"]) == 1


async def test_annotations_hold_at_most_2000_points_across_shapes(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    # 2,000 points at full precision (the most a drawing holds): accepted, stored as sent.
    full = {"shapes": [_shape("freehand", _points(1000)), _shape("freehand", _points(1000))]}
    r = await post_feedback(client, owner, clip_id, annotation=full)
    assert r.status_code == 201, r.text
    assert r.json()["annotation"]["shapes"][1]["points"] == _points(1000)
    item_url = f"/v1/feedback/{r.json()['id']}"

    # One more, in another shape: refused, naming the limit (counted before the shapes are
    # validated, so the probe's 50 shapes of 1,000 points are refused the same way).
    over = {"shapes": [*full["shapes"], _label("one point more")]}
    r = await post_feedback(client, owner, clip_id, annotation=over)
    assert _too_many_points(r, 2000, 2001), r.text
    probe = {"shapes": [_shape("freehand", [[0.5, 0.5]] * 1000)] * 50}
    r = await post_feedback(client, owner, clip_id, annotation=probe)
    assert _too_many_points(r, 2000, 50_000), r.text
    # Editing is held to the same bound, and a refused edit changes nothing.
    r = await client.patch(item_url, json={"annotation": over}, headers=owner.headers)
    assert _too_many_points(r, 2000, 2001), r.text
    page = await _threads(client, owner, clip_id)
    assert [len(t["annotation"]["shapes"]) for t in page["items"]] == [2]


class TestLoweredAnnotationLimit:
    """PEERPITCH_ANNOTATION_MAX_POINTS below the schema's 2,000."""

    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        return make_settings(annotation_max_points=10)  # type: ignore[no-any-return]

    async def test_the_setting_bounds_creating_and_editing(
        self, app: Any, client: httpx.AsyncClient, make_org: Any
    ) -> None:
        org = await make_org()
        owner = await org.add_user("rep")
        clip_id = await playable_clip(app, client, owner)
        ten = {"shapes": [_shape("freehand", _points(8)), _shape("arrow")]}
        r = await post_feedback(client, owner, clip_id, annotation=ten)
        assert r.status_code == 201, r.text
        eleven = {"shapes": [*ten["shapes"], _label("over")]}
        r = await post_feedback(client, owner, clip_id, annotation=eleven)
        assert _too_many_points(r, 10, 11), r.text
        url = f"/v1/feedback/{(await _threads(client, owner, clip_id))['items'][0]['id']}"
        r = await client.patch(url, json={"annotation": eleven}, headers=owner.headers)
        assert _too_many_points(r, 10, 11), r.text
        r = await client.patch(url, json={"annotation": {"shapes": []}}, headers=owner.headers)
        assert r.status_code == 422
        assert (
            len((await _threads(client, owner, clip_id))["items"][0]["annotation"]["shapes"]) == 2
        )


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
    # The clip's visibility, then the page's threads with their replies and the caller's
    # helpful marks in one statement (the caller's row aside: app.auth.caller).
    assert len(queries(statements)) == 2, statements


# --- contract v1.1: one thread by id, typed annotations, nulls in PATCH, Location -----------


async def test_one_thread_by_id_for_a_deep_link(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, peer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    drawing = {"shapes": [_shape("arrow"), _text_shape()]}
    root = (await post_feedback(client, peer, clip_id, body="root", annotation=drawing)).json()
    other = (await post_feedback(client, peer, clip_id, body="other", timestamp_ms=50)).json()
    replies = [
        (await post_feedback(client, owner, clip_id, body=f"r{i}", parent_id=root["id"])).json()
        for i in range(3)
    ]
    url = f"/v1/clips/{clip_id}/feedback"
    await client.post(f"/v1/feedback/{replies[1]['id']}/reactions/helpful", headers=peer.headers)

    listed = {t["id"]: t for t in (await _threads(client, peer, clip_id))["items"]}
    # The thread's id, or any of its replies' ids, answers with the thread exactly as the
    # clip's list shows it to the same caller (their helpful marks included).
    for item_id in (root["id"], replies[0]["id"], replies[2]["id"]):
        r = await client.get(f"/v1/feedback/{item_id}", headers=peer.headers)
        assert r.status_code == 200, r.text
        assert r.json() == listed[root["id"]]
        assert ThreadOut.model_validate(r.json()).model_dump(mode="json", exclude_none=True) == (
            _without_nulls(r.json())
        )
    thread = r.json()
    assert [x["body"] for x in thread["replies"]] == ["r0", "r1", "r2"]
    assert thread["reply_count"] == 3 and thread["annotation"] == drawing
    assert thread["replies"][1]["reacted_by_me"] is True
    r = await client.get(f"/v1/feedback/{other['id']}", headers=peer.headers)
    assert r.json() == listed[other["id"]] and r.json()["replies"] == []

    # A thread deleted with replies left is a tombstone in the list: here too.
    assert (
        await client.delete(f"/v1/feedback/{root['id']}", headers=peer.headers)
    ).status_code == 204
    r = await client.get(f"/v1/feedback/{replies[0]['id']}", headers=owner.headers)
    assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["body"] == ""
    assert (
        r.json()
        == {t["id"]: t for t in (await _threads(client, owner, clip_id))["items"]}[root["id"]]
    )
    # A removed reply is gone.
    await client.delete(f"/v1/feedback/{replies[2]['id']}", headers=owner.headers)
    r = await client.get(f"/v1/feedback/{replies[2]['id']}", headers=owner.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await client.get(url, headers=owner.headers)).status_code == 200


async def test_one_thread_by_id_is_seen_exactly_as_the_list(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Globex")
    owner, reviewer, bystander = [await org.add_user("rep") for _ in range(3)]
    coach = await org.add_user("coach")
    private = await playable_clip(app, client, owner, visibility="private")
    root = (await post_feedback(client, owner, private)).json()
    reply = (await post_feedback(client, coach, private, parent_id=root["id"])).json()

    async def seen(actor: Any, item_id: str) -> tuple[int, int]:
        """The status of GET /v1/feedback/{id} and of the clip's list, for the actor."""
        one = await client.get(f"/v1/feedback/{item_id}", headers=actor.headers)
        listed = await client.get(f"/v1/clips/{private}/feedback", headers=actor.headers)
        if one.status_code == 404:
            assert one.json()["error"]["code"] == "not_found", one.text
        return one.status_code, listed.status_code

    for item in (root, reply):
        assert await seen(owner, item["id"]) == (200, 200)
        assert await seen(coach, item["id"]) == (200, 200)
        assert await seen(bystander, item["id"]) == (404, 404)
        assert await seen(reviewer, item["id"]) == (404, 404)
        assert await seen(other.admin, item["id"]) == (404, 404)  # another org
    assert (
        await client.get(f"/v1/feedback/{uuid.uuid4()}", headers=owner.headers)
    ).status_code == (404)
    assert (await client.get("/v1/feedback/not-a-uuid", headers=owner.headers)).status_code == 422
    assert (await client.get(f"/v1/feedback/{root['id']}")).status_code == 401

    # A colleague asked to review the private clip sees its feedback (as in the list).
    r = await client.post(
        f"/v1/clips/{private}/review-requests",
        json={"reviewer_id": reviewer.id},
        headers=owner.headers,
    )
    assert r.status_code == 201, r.text
    assert await seen(reviewer, reply["id"]) == (200, 200)

    # A deleted clip's feedback is gone for everyone.
    assert (await client.delete(f"/v1/clips/{private}", headers=owner.headers)).status_code == 204
    assert await seen(coach, root["id"]) == (404, 404)


@pytest.mark.parametrize("replies", [0, 15])
async def test_one_thread_by_id_runs_one_statement(
    app: Any, client: httpx.AsyncClient, make_org: Any, replies: int
) -> None:
    org = await make_org()
    owner, peer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    root = (await post_feedback(client, peer, clip_id)).json()
    last = root
    for _ in range(replies):
        last = (await post_feedback(client, owner, clip_id, parent_id=root["id"])).json()
        await client.post(f"/v1/feedback/{last['id']}/reactions/helpful", headers=peer.headers)

    with statements_during(app) as statements:
        r = await client.get(f"/v1/feedback/{last['id']}", headers=peer.headers)
    assert r.status_code == 200 and r.json()["reply_count"] == replies
    assert all(x["reacted_by_me"] for x in r.json()["replies"])
    # The thread with its replies, authors and marks in one statement (besides the caller's
    # row: app.auth.caller).
    assert len(queries(statements)) == 1, statements


def _text_shape(**overrides: Any) -> dict[str, Any]:
    shape = {"type": "text", "points": [[0.25, 0.75]], "text": "Smile here", "color": "#ffffff"}
    return shape | overrides


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


async def test_annotations_are_typed_with_text_and_stroke_width(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    drawing = {
        "shapes": [
            _shape("arrow") | {"stroke_width": 3},
            _shape("freehand", [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]) | {"stroke_width": 0.5},
            _text_shape(stroke_width=2),
            _text_shape(text="x" * 280),
            _shape("rect"),
        ]
    }
    r = await post_feedback(client, owner, clip_id, annotation=drawing)
    assert r.status_code == 201, r.text
    created = r.json()
    # Sent back as sent: numbers as numbers, unset optional fields left out (not null).
    assert created["annotation"] == drawing
    assert "stroke_width" not in created["annotation"]["shapes"][4]
    assert "text" not in created["annotation"]["shapes"][0]
    thread = (await _threads(client, owner, clip_id))["items"][0]
    assert thread["annotation"] == created["annotation"]
    one = (await client.get(f"/v1/feedback/{created['id']}", headers=owner.headers)).json()
    assert one["annotation"] == created["annotation"]

    # Editing the drawing answers with the new one, typed the same way; null clears it.
    url = f"/v1/feedback/{created['id']}"
    new = {"shapes": [_text_shape(text="Pause", color="#00ff00")]}
    r = await client.patch(url, json={"annotation": new}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["annotation"] == new
    r = await client.patch(url, json={"body": "edited"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["annotation"] == new
    r = await client.patch(url, json={"annotation": None}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["annotation"] is None

    invalid = [
        {"shapes": [_text_shape(points=[[0.1, 0.1], [0.2, 0.2]])]},  # one anchor point
        {"shapes": [_text_shape(points=[])]},
        {"shapes": [_text_shape(points=[[1.5, 0.5]])]},
        {"shapes": [{k: v for k, v in _text_shape().items() if k != "text"}]},
        {"shapes": [_text_shape(text=None)]},
        {"shapes": [_text_shape(text="")]},
        {"shapes": [_text_shape(text="  \n")]},
        {"shapes": [_text_shape(text="a\x00b")]},
        {"shapes": [_text_shape(text="x" * 281)]},
        {"shapes": [_text_shape(text=5)]},
        {"shapes": [_shape("line") | {"text": "a line has none"}]},
        {"shapes": [_shape("line") | {"stroke_width": 0}]},
        {"shapes": [_shape("line") | {"stroke_width": -1}]},
        {"shapes": [_shape("line") | {"stroke_width": 100.5}]},
        {"shapes": [_text_shape()] * 51},
    ]
    for annotation in invalid:
        r = await post_feedback(client, owner, clip_id, annotation=annotation)
        assert r.status_code == 422, (annotation, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    assert len((await _threads(client, owner, clip_id))["items"]) == 1


async def test_stored_annotations_of_before_still_read(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    """Rows written before shapes had stroke_width and text (and when points were tuples)
    serialize unchanged through every response."""
    org = await make_org()
    owner = await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    item = (await post_feedback(client, owner, clip_id)).json()
    stored = {
        "shapes": [
            {"type": "arrow", "points": [[0.1, 0.2], [0.3, 0.4]], "color": "#ff0000"},
            {"type": "freehand", "points": [[0, 0], [1, 1], [0.5, 0.25]], "color": "#00FF00"},
        ]
    }
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Feedback).where(Feedback.id == uuid.UUID(item["id"])).values(annotation=stored)
        )
    as_numbers = {
        "shapes": [
            stored["shapes"][0],
            stored["shapes"][1] | {"points": [[0.0, 0.0], [1.0, 1.0], [0.5, 0.25]]},
        ]
    }
    listed = (await _threads(client, owner, clip_id))["items"][0]["annotation"]
    assert listed == as_numbers
    url = f"/v1/feedback/{item['id']}"
    assert (await client.get(url, headers=owner.headers)).json()["annotation"] == as_numbers
    r = await client.patch(url, json={"body": "still there"}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["annotation"] == as_numbers
    r = await client.post(f"{url}/resolve", headers=owner.headers)
    assert r.status_code == 200 and r.json()["annotation"] == as_numbers


def test_annotation_schema_is_typed_without_prefix_items() -> None:
    schemas = openapi_document()["components"]["schemas"]
    mine = ("Shape", "Annotation", "FeedbackCreate", "FeedbackUpdate", "FeedbackOut", "ThreadOut")
    # Swift and Kotlin client generators cannot read `prefixItems` (a tuple's schema).
    assert all("prefixItems" not in json.dumps(schemas[name]) for name in mine)
    shape = schemas["Shape"]
    point = shape["properties"]["points"]["items"]
    assert point["type"] == "array" and point["minItems"] == point["maxItems"] == 2
    assert point["items"] == {"type": "number", "minimum": 0.0, "maximum": 1.0}
    assert "text" in shape["properties"]["type"]["enum"]
    assert {"stroke_width", "text"} <= set(shape["properties"]) and "text" not in shape["required"]
    for name in ("FeedbackOut", "ThreadOut"):
        annotation = schemas[name]["properties"]["annotation"]
        assert {"$ref": "#/components/schemas/Annotation"} in annotation["anyOf"], name
    # Explicit null is not allowed for the body and position of an edit.
    update_props = schemas["FeedbackUpdate"]["properties"]
    assert "anyOf" not in update_props["body"] and "anyOf" not in update_props["timestamp_ms"]
    assert {"type": "null"} in update_props["end_ms"]["anyOf"]


async def test_nulls_in_an_edit_are_validated_not_a_server_error(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    drawing = {"shapes": [_shape("rect")]}
    item = (
        await post_feedback(
            client, owner, clip_id, timestamp_ms=1000, end_ms=2000, skill="demo", annotation=drawing
        )
    ).json()
    url = f"/v1/feedback/{item['id']}"

    # What the schema fuzzer sent (an explicit null body was a 500).
    fuzzed = {"annotation": None, "body": None, "end_ms": 1, "skill": "0", "timestamp_ms": 0}
    for body in (fuzzed, {"body": None}, {"timestamp_ms": None}, {"body": None, "skill": None}):
        r = await client.patch(url, json=body, headers=owner.headers)
        assert r.status_code == 422, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_error" and error["request_id"]
        assert {d["loc"][1] for d in error["details"]} <= {"body", "timestamp_ms"}, error
    unchanged = (await client.get(url, headers=owner.headers)).json()
    assert (unchanged["body"], unchanged["timestamp_ms"], unchanged["end_ms"]) == (
        item["body"], 1000, 2000,
    )  # fmt: skip
    assert unchanged["edited_at"] is None and unchanged["annotation"] == drawing

    # Creating: the same (a thread's timestamp_ms is checked by the service).
    for body in ({"body": None}, {"mentions": None}, {"body": "ok", "timestamp_ms": 1, "x": None}):
        r = await client.post(f"/v1/clips/{clip_id}/feedback", json=body, headers=owner.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", body
    r = await post_feedback(client, owner, clip_id, timestamp_ms=None)
    assert r.status_code == 422 and r.json()["error"]["code"] == "missing_timestamp"

    # Nullable fields are cleared by null; left out, they stay.
    r = await client.patch(url, json={"end_ms": None}, headers=owner.headers)
    assert r.status_code == 200 and r.json()["end_ms"] is None and r.json()["skill"] == "demo"
    r = await client.patch(url, json={"skill": None, "annotation": None}, headers=owner.headers)
    assert r.status_code == 200 and (r.json()["skill"], r.json()["annotation"]) == (None, None)
    assert r.json()["timestamp_ms"] == 1000 and r.json()["body"] == item["body"]
    # The fuzzer's body without the nulls: its skill is not one of the stage.
    r = await client.patch(
        url, json={"end_ms": 1, "skill": "0", "timestamp_ms": 0}, headers=owner.headers
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_skill"
    r = await client.patch(url, json={"end_ms": 1, "timestamp_ms": 0}, headers=owner.headers)
    assert r.status_code == 200 and (r.json()["timestamp_ms"], r.json()["end_ms"]) == (0, 1)


async def test_created_feedback_has_a_location_also_when_replayed(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, peer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    r = await post_feedback(client, peer, clip_id)
    assert r.status_code == 201 and r.headers["Location"] == f"/v1/feedback/{r.json()['id']}"
    assert "Idempotent-Replayed" not in r.headers
    root = r.json()
    located = await client.get(r.headers["Location"], headers=owner.headers)
    assert located.status_code == 200 and located.json()["id"] == root["id"]

    # A reply: its own URL, which answers with its thread.
    headers = owner.headers | {"Idempotency-Key": "reply-1"}
    body = {"body": "Thanks", "parent_id": root["id"]}
    first = await client.post(f"/v1/clips/{clip_id}/feedback", json=body, headers=headers)
    again = await client.post(f"/v1/clips/{clip_id}/feedback", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, first.text
    assert (
        first.headers["Location"]
        == again.headers["Location"]
        == (f"/v1/feedback/{first.json()['id']}")
    )
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    thread = (await client.get(again.headers["Location"], headers=peer.headers)).json()
    assert thread["id"] == root["id"] and [x["id"] for x in thread["replies"]] == [
        first.json()["id"]
    ]
