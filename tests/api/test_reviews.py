"""Review requests (lifecycle, rubric validation, inbox/outbox) and the skill profile."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from app.db import utcnow
from app.reviews.models import ReviewRequest, ReviewScore
from app.reviews.profile import weighted_average
from tests.api.feedback_helpers import playable_clip, post_feedback
from tests.helpers.api import request_review


async def _box(client: httpx.AsyncClient, actor: Any, **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/v1/review-requests", params=params, headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def test_review_request_lifecycle(app: Any, client: httpx.AsyncClient, make_org: Any) -> None:
    org, other = await make_org(), await make_org("Globex")
    owner = await org.add_user("rep", name="Rita")
    reviewer = await org.add_user("top_performer", name="Tom")
    bystander, coach = await org.add_user("rep"), await org.add_user("coach")
    clip_id = await playable_clip(app, client, owner, stage="closing", skills=["value_roi"])

    # Who may ask, and whom.
    r = await request_review(client, bystander, clip_id, reviewer)
    assert r.status_code == 403
    r = await request_review(client, owner, clip_id, owner)
    assert r.status_code == 422 and r.json()["error"]["code"] == "self_review"
    r = await request_review(client, owner, clip_id, other.admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_reviewer"
    r = await request_review(client, owner, clip_id, str(uuid.uuid4()))
    assert r.status_code == 422
    past = (utcnow() - timedelta(hours=1)).isoformat()
    r = await request_review(client, owner, clip_id, reviewer, due_at=past)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_due_at"
    r = await request_review(client, other.admin, clip_id, reviewer)
    assert r.status_code == 404

    due = (utcnow() + timedelta(days=2)).isoformat()
    r = await request_review(client, owner, clip_id, reviewer, message="Closing call", due_at=due)
    assert r.status_code == 201, r.text
    request = r.json()
    assert request["status"] == "pending" and request["overdue"] is False
    assert request["reviewer"] == {"id": reviewer.id, "name": "Tom", "role": "top_performer"}
    assert request["clip"]["id"] == clip_id and request["scores"] == {}
    r = await request_review(client, owner, clip_id, reviewer)
    assert r.status_code == 409 and r.json()["error"]["code"] == "review_already_requested"
    # A coach may ask on the rep's behalf.
    by_coach = await request_review(client, coach, clip_id, bystander)
    assert by_coach.status_code == 201

    # Inbox and outbox; the rep sees the coach's request about their clip in the outbox.
    assert [x["id"] for x in await _box(client, reviewer, box="inbox")] == [request["id"]]
    outbox = await _box(client, owner, box="outbox")
    assert [x["id"] for x in outbox] == [by_coach.json()["id"], request["id"]]
    assert await _box(client, owner, box="inbox") == []
    assert await _box(client, reviewer, box="inbox", status="completed") == []
    page = await client.get("/v1/review-requests?box=outbox&limit=1", headers=owner.headers)
    nxt = await client.get(
        f"/v1/review-requests?box=outbox&limit=1&cursor={page.json()['next_cursor']}",
        headers=owner.headers,
    )
    assert nxt.json()["items"][0]["id"] == request["id"]
    assert (
        await client.get("/v1/review-requests?box=sideways", headers=owner.headers)
    ).status_code == 422

    # Overdue once its due date passed while pending.
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(ReviewRequest)
            .where(ReviewRequest.id == uuid.UUID(request["id"]))
            .values(due_at=utcnow() - timedelta(minutes=1))
        )
    assert (await _box(client, reviewer, box="inbox"))[0]["overdue"] is True

    # Completing: only the reviewer, only the stage's skills, scores 1..5.
    complete = f"/v1/review-requests/{request['id']}/complete"
    r = await client.post(complete, json={"scores": {"value_roi": 4}}, headers=owner.headers)
    assert r.status_code == 403
    r = await client.post(complete, json={"scores": {"demo": 4}}, headers=reviewer.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_skill"
    for bad in ({"value_roi": 0}, {"value_roi": 6}, {"value_roi": "good"}):
        r = await client.post(complete, json={"scores": bad}, headers=reviewer.headers)
        assert r.status_code == 422
    r = await client.post(complete, json={}, headers=reviewer.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "empty_review"
    r = await client.post(
        complete,
        json={"scores": {"value_roi": 4, "urgency": 2}, "summary": "Strong ROI story"},
        headers=reviewer.headers,
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "completed" and done["scores"] == {"urgency": 2, "value_roi": 4}
    assert done["overdue"] is False and done["responded_at"]
    r = await client.post(complete, json={"scores": {"value_roi": 5}}, headers=reviewer.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "review_not_pending"
    completed = await _box(client, reviewer, box="inbox", status="completed")
    assert [x["id"] for x in completed] == [request["id"]]
    got = await client.get(f"/v1/review-requests/{request['id']}", headers=owner.headers)
    assert got.status_code == 200 and got.json()["summary"] == "Strong ROI story"
    other_view = await client.get(
        f"/v1/review-requests/{request['id']}", headers=other.admin.headers
    )
    assert other_view.status_code == 404

    # Declining; then a new request to the same reviewer is allowed again.
    decline = f"/v1/review-requests/{by_coach.json()['id']}/decline"
    assert (await client.post(decline, json={}, headers=owner.headers)).status_code == 403
    assert (await client.post(decline, json={}, headers=reviewer.headers)).status_code == 404
    r = await client.post(decline, json={"reason": "On leave"}, headers=bystander.headers)
    assert r.status_code == 200 and r.json()["status"] == "declined"
    assert r.json()["decline_reason"] == "On leave"
    assert (await client.post(decline, json={}, headers=bystander.headers)).status_code == 409
    assert (await request_review(client, owner, clip_id, bystander)).status_code == 201


def test_weighted_average_halves_every_60_days() -> None:
    now = utcnow()
    assert weighted_average([], now) is None
    assert weighted_average([(3, now)], now) == 3.0
    # Two months older weighs half: (2*1 + 4*2) / 3.
    assert (
        weighted_average([(2, now - timedelta(days=75)), (4, now - timedelta(days=15))], now)
        == 3.33
    )
    # A future timestamp (clock skew) weighs like now.
    assert weighted_average([(5, now + timedelta(days=1)), (1, now)], now) == 3.0


async def test_skill_profile_numbers_for_a_known_data_set(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Globex")
    rep = await org.add_user("rep")
    reviewer, peer, coach = (
        await org.add_user("top_performer"), await org.add_user("rep"), await org.add_user("coach"),
    )  # fmt: skip
    clip_id = await playable_clip(app, client, rep, stage="closing", skills=["value_roi"])

    async def review(scores: dict[str, int], days_ago: int) -> None:
        r = await request_review(client, rep, clip_id, reviewer)
        assert r.status_code == 201, r.text
        url = f"/v1/review-requests/{r.json()['id']}/complete"
        r = await client.post(url, json={"scores": scores}, headers=reviewer.headers)
        assert r.status_code == 200, r.text
        async with app.state.sessionmaker.begin() as session:
            await session.execute(
                update(ReviewScore)
                .where(ReviewScore.review_request_id == uuid.UUID(r.json()["id"]))
                .values(scored_at=utcnow() - timedelta(days=days_ago))
            )

    await review({"value_roi": 2, "urgency": 4}, days_ago=75)
    await review({"value_roi": 4}, days_ago=15)

    # Tagged threads on the rep's clip: two value_roi (one resolved), one urgency.
    a = (await post_feedback(client, peer, clip_id, skill="value_roi")).json()
    await post_feedback(client, peer, clip_id, skill="value_roi")
    await post_feedback(client, peer, clip_id, skill="urgency")
    await post_feedback(client, rep, clip_id, parent_id=a["id"], skill="value_roi")  # a reply
    await client.post(f"/v1/feedback/{a['id']}/resolve", headers=rep.headers)
    # Feedback on someone else's clip is not the rep's.
    theirs = await playable_clip(app, client, peer, stage="closing", skills=[])
    await post_feedback(client, rep, theirs, skill="value_roi")

    r = await client.get(f"/v1/users/{rep.id}/skills", headers=coach.headers)
    assert r.status_code == 200, r.text
    profile = r.json()
    assert [s["key"] for s in profile["stages"]] == ["prospecting", "contact_to_trial", "closing"]
    closing = {s["key"]: s for s in profile["stages"][2]["skills"]}
    roi, urgency = closing["value_roi"], closing["urgency"]
    assert roi["scores"] | {"last_scored_at": None} == {
        "count": 2, "average": 3.0, "weighted_average": 3.33, "last_scored_at": None,
    }  # fmt: skip
    assert roi["feedback"] == {"open": 1, "resolved": 1}
    assert [w["score_average"] for w in roi["trend"]["windows"]] == [2.0, None, 4.0]
    assert [w["feedback_count"] for w in roi["trend"]["windows"]] == [0, 0, 2]
    assert roi["trend"]["change"] == 2.0 and roi["trend"]["direction"] == "improving"
    assert urgency["scores"]["count"] == 1 and urgency["scores"]["weighted_average"] == 4.0
    assert urgency["feedback"] == {"open": 1, "resolved": 0}
    assert urgency["trend"]["change"] is None and urgency["trend"]["direction"] is None
    assert closing["follow_up"]["scores"] == {
        "count": 0, "average": None, "weighted_average": None, "last_scored_at": None,
    }  # fmt: skip

    # The rep sees their own; peers do not; other orgs do not even find the user.
    assert (await client.get(f"/v1/users/{rep.id}/skills", headers=rep.headers)).status_code == 200
    assert (await client.get(f"/v1/users/{rep.id}/skills", headers=peer.headers)).status_code == 403
    r = await client.get(f"/v1/users/{rep.id}/skills", headers=other.admin.headers)
    assert r.status_code == 404


async def test_review_request_location_and_idempotency_key(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, reviewer, second = [await org.add_user("rep") for _ in range(3)]
    clip_id = await playable_clip(app, client, owner)
    url = f"/v1/clips/{clip_id}/review-requests"

    r = await request_review(client, owner, clip_id, second)
    assert r.status_code == 201 and r.headers["Location"] == f"/v1/review-requests/{r.json()['id']}"
    located = await client.get(r.headers["Location"], headers=owner.headers)
    assert located.status_code == 200 and located.json() == r.json()

    headers = owner.headers | {"Idempotency-Key": "ask-tom"}
    body = {"reviewer_id": reviewer.id, "message": "Before Thursday"}
    first = await client.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    # A retry (a lost response on a phone): the first answer again, nothing asked twice
    # (without the key it would be 409 review_already_requested).
    again = await client.post(url, json=body, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (
        again.headers["Location"]
        == first.headers["Location"]
        == (f"/v1/review-requests/{first.json()['id']}")
    )
    changed = await client.post(url, json=body | {"message": "other"}, headers=headers)
    assert changed.status_code == 422
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    r = await client.post(url, json=body, headers=owner.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "review_already_requested"
    assert [x["id"] for x in await _box(client, reviewer)] == [first.json()["id"]]
    notes = (await client.get("/v1/notifications", headers=reviewer.headers)).json()["items"]
    assert [n["kind"] for n in notes] == ["review_requested"]

    # An explicit null where a value is required: 422 with the envelope, never a 500.
    for bad in ({"reviewer_id": None}, {"reviewer_id": second.id, "message": None}):
        r = await client.post(url, json=bad, headers=owner.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", bad
    answer = f"/v1/review-requests/{first.json()['id']}"
    for path, bad in (
        ("complete", {"scores": None}),
        ("complete", {"summary": None}),
        ("complete", {"scores": {"value_roi": None}}),
        ("decline", {"reason": None}),
    ):
        r = await client.post(f"{answer}/{path}", json=bad, headers=reviewer.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error", bad
    assert (await client.get(answer, headers=reviewer.headers)).json()["status"] == "pending"


async def test_due_at_without_an_offset_or_beyond_year_9999_is_422(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    # Both were 500s: a naive time compared with the clock, and an offset that overflows
    # when converted to UTC.
    org = await make_org()
    owner, reviewer = await org.add_user("rep"), await org.add_user("top_performer")
    clip_id = await playable_clip(app, client, owner)
    for due_at in ("2030-01-01T00:00:00", "9999-12-31T23:59:59-05:00"):
        r = await request_review(client, owner, clip_id, reviewer, due_at=due_at)
        assert r.status_code == 422, (due_at, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    r = await request_review(client, owner, clip_id, reviewer, due_at="2030-01-01T09:00:00+02:00")
    assert r.status_code == 201, r.text
    assert r.json()["due_at"].startswith("2030-01-01T07:00:00")
