from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from sqlalchemy import update

from app.clips.models import Clip
from app.playback.signing import parse_token
from tests.helpers.api import DURATION_MS, clip_body, create_clip, playable_clip
from tests.helpers.sql_count import queries, statements_during


async def test_create_clip_returns_clip_and_upload(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep", name="Rita Rep")
    r = await client.post("/v1/clips", json=clip_body(), headers=rep.headers)
    assert r.status_code == 201, r.text
    created = r.json()
    clip, upload = created["clip"], created["upload"]
    assert r.headers["Location"] == f"/v1/clips/{clip['id']}"
    expected = {
        "id",
        "org_id",
        "owner_id",
        "owner",
        "title",
        "description",
        "kind",
        "stage",
        "skills",
        "visibility",
        "status",
        "progress",
        "error",
        "duration_ms",
        "width",
        "height",
        "is_exemplar",
        "created_at",
        "updated_at",
        "poster_url",
        "upload",
    }
    assert expected <= set(clip)
    assert clip["status"] == "awaiting_upload"
    assert clip["owner_id"] == rep.id
    assert clip["owner"] == {"id": rep.id, "name": "Rita Rep", "role": "rep"}
    assert clip["visibility"] == "org"
    assert clip["error"] is None
    assert clip["poster_url"] is None
    assert clip["upload"] is None  # the upload is next to the clip here
    assert upload["part_count"] == 1
    assert set(upload) == {"id", "part_size", "part_count", "expires_at"}

    r = await client.get(f"/v1/clips/{clip['id']}", headers=rep.headers)
    assert r.status_code == 200
    got = r.json()
    assert got["title"] == clip["title"]
    assert got["owner"] == clip["owner"]
    # The owner's app, restarted without the upload id, finds the upload to resume.
    assert got["upload"] == upload | {"status": "active"}


async def test_create_clip_validation(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    cases = [
        ({"stage": "negotiation"}, "unknown_stage"),
        ({"skills": ["value_roi"]}, "unknown_skill"),  # a closing skill on a contact_to_trial clip
        ({"content_type": "image/png"}, "validation_error"),
        ({"size_bytes": 0}, "validation_error"),
        ({"kind": "movie"}, "validation_error"),
        ({"title": ""}, "validation_error"),
    ]
    for override, code in cases:
        r = await client.post("/v1/clips", json=clip_body(**override), headers=rep.headers)
        assert r.status_code == 422, override
        assert r.json()["error"]["code"] == code, override
    r = await client.post("/v1/clips", json=clip_body(size_bytes=9 * 1024**3), headers=rep.headers)
    assert r.status_code == 413
    r = await client.get("/v1/clips", headers=rep.headers)
    assert r.json()["items"] == []  # nothing half-written


async def test_idempotency_key_replays_first_response(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    headers = {**rep.headers, "Idempotency-Key": "phone-retry-1"}
    first = await client.post("/v1/clips", json=clip_body(), headers=headers)
    again = await client.post("/v1/clips", json=clip_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    items = (await client.get("/v1/clips", headers=rep.headers)).json()["items"]
    assert len(items) == 1

    r = await client.post("/v1/clips", json=clip_body(title="Other"), headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused"

    # Keys are per user: another user's identical key is a new request.
    peer = await org.add_user("rep")
    r = await client.post(
        "/v1/clips", json=clip_body(), headers={**peer.headers, "Idempotency-Key": "phone-retry-1"}
    )
    assert r.status_code == 201
    assert r.json()["clip"]["id"] != first.json()["clip"]["id"]


async def test_visibility_rules(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    peer = await org.add_user("rep")
    coach = await org.add_user("coach")
    private = (await create_clip(client, owner, visibility="private", title="private one"))["clip"]
    public = (await create_clip(client, owner, title="shared one"))["clip"]

    for actor, can_see_private in ((owner, True), (coach, True), (org.admin, True), (peer, False)):
        r = await client.get(f"/v1/clips/{private['id']}", headers=actor.headers)
        assert r.status_code == (200 if can_see_private else 404), actor.role
        ids = {
            c["id"] for c in (await client.get("/v1/clips", headers=actor.headers)).json()["items"]
        }
        assert public["id"] in ids
        assert (private["id"] in ids) == can_see_private

    other = await make_org("Other")
    r = await client.get(f"/v1/clips/{public['id']}", headers=other.admin.headers)
    assert r.status_code == 404
    assert (await client.get("/v1/clips", headers=other.admin.headers)).json()["items"] == []


async def test_only_owner_or_admin_edits(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    coach = await org.add_user("coach")
    clip = (await create_clip(client, owner))["clip"]
    url = f"/v1/clips/{clip['id']}"

    assert (await client.patch(url, json={"title": "x"}, headers=coach.headers)).status_code == 403
    assert (await client.delete(url, headers=coach.headers)).status_code == 403
    r = await client.patch(
        url, json={"stage": "closing", "skills": ["value_roi", "urgency"]}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "closing"
    # Changing the stage alone must keep skills valid for the new stage.
    r = await client.patch(url, json={"stage": "prospecting"}, headers=owner.headers)
    assert r.status_code == 422
    r = await client.patch(url, json={"title": "Renamed"}, headers=org.admin.headers)
    assert r.status_code == 200
    assert r.json()["title"] == "Renamed"


async def test_list_filters_and_pagination(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    top = await org.add_user("top_performer")
    await create_clip(client, rep, title="Cold call opener", stage="prospecting", skills=[])
    await create_clip(client, rep, title="ROI story", stage="closing", skills=["value_roi"])
    await create_clip(
        client,
        top,
        title="Great close",
        kind="exemplar",
        stage="closing",
        description="How to handle the 100% discount ask",
        skills=[],
    )

    async def titles(**params: Any) -> list[str]:
        r = await client.get("/v1/clips", params=params, headers=rep.headers)
        assert r.status_code == 200, r.text
        return [c["title"] for c in r.json()["items"]]

    assert await titles() == ["Great close", "ROI story", "Cold call opener"]  # newest first
    assert await titles(stage="closing") == ["Great close", "ROI story"]
    assert await titles(kind="exemplar") == ["Great close"]
    assert await titles(owner_id=rep.id) == ["ROI story", "Cold call opener"]
    assert await titles(status="awaiting_upload", stage="prospecting") == ["Cold call opener"]
    assert await titles(q="roi") == ["ROI story"]
    assert await titles(q="100%") == ["Great close"]  # matches the description, % is literal
    assert await titles(q="%") == ["Great close"]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/clips", params=params, headers=rep.headers)).json()
        seen += [c["title"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["Great close", "ROI story", "Cold call opener"]


async def test_delete_is_soft_and_enqueues_purge(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    from sqlalchemy import select

    from app.jobs.models import Job

    org = await make_org()
    rep = await org.add_user("rep")
    clip = (await create_clip(client, rep))["clip"]
    r = await client.delete(f"/v1/clips/{clip['id']}", headers=rep.headers)
    assert r.status_code == 204
    assert (await client.get(f"/v1/clips/{clip['id']}", headers=rep.headers)).status_code == 404
    assert (await client.get("/v1/clips", headers=rep.headers)).json()["items"] == []
    assert (await client.delete(f"/v1/clips/{clip['id']}", headers=rep.headers)).status_code == 404
    async with app.state.sessionmaker() as session:
        jobs = (await session.scalars(select(Job).where(Job.kind == "purge_clip"))).all()
    assert [j.payload["clip_id"] for j in jobs] == [clip["id"]]


async def test_unknown_clip_is_404(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    r = await client.get(f"/v1/clips/{uuid.uuid4()}", headers=org.admin.headers)
    assert r.status_code == 404


async def test_every_clip_response_names_its_owner(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner = await org.add_user("top_performer", name="Tess Top")
    peer = await org.add_user("rep", name="Pete Peer")
    person = {"id": owner.id, "name": "Tess Top", "role": "top_performer"}
    headers = {**owner.headers, "Idempotency-Key": "create-1"}
    first = await client.post("/v1/clips", json=clip_body(), headers=headers)
    assert first.status_code == 201 and first.json()["clip"]["owner"] == person
    # A replay of the create carries the same Location.
    replay = await client.post("/v1/clips", json=clip_body(), headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["Location"] == first.headers["Location"]
    clip_id = first.json()["clip"]["id"]
    url = f"/v1/clips/{clip_id}"

    got = (await client.get(url, headers=peer.headers)).json()
    assert (got["owner_id"], got["owner"]) == (owner.id, person)
    assert got["upload"] is None  # the upload is the owner's alone
    assert (await client.get(url, headers=org.admin.headers)).json()["upload"] is None
    patched = await client.patch(url, json={"title": "Renamed"}, headers=org.admin.headers)
    assert patched.status_code == 200 and patched.json()["owner"] == person
    listed = (await client.get("/v1/clips", headers=peer.headers)).json()["items"]
    assert [(c["id"], c["owner"]) for c in listed] == [(clip_id, person)]


async def _with_poster(app: Any, clip_id: str) -> None:
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, uuid.UUID(clip_id))
        assert clip is not None and clip.media
        media = dict(clip.media) | {"poster": "poster.jpg"}
        await session.execute(update(Clip).where(Clip.id == clip.id).values(media=media))


async def test_list_items_render_without_more_requests_in_flat_statements(
    app: Any, client: httpx.AsyncClient, make_org: Any, settings: Any
) -> None:
    org = await make_org()
    viewer = await org.add_user("rep")
    owners = [await org.add_user("rep", name=f"Owner {i}") for i in range(4)]

    async def page(limit: int) -> tuple[list[dict[str, Any]], list[str]]:
        with statements_during(app) as statements:
            r = await client.get("/v1/clips", params={"limit": limit}, headers=viewer.headers)
        assert r.status_code == 200, r.text
        return r.json()["items"], queries(statements)

    await create_clip(client, owners[0], title="Still uploading")
    for i in range(21):
        clip_id = await playable_clip(app, client, owners[i % 4], title=f"Pitch {i}")
        await _with_poster(app, clip_id)
    before = int(time.time())
    small, small_reads = await page(2)
    large, large_reads = await page(20)
    after = int(time.time())
    assert (len(small), len(large)) == (2, 20)
    # The page with each clip's owner, the page's view counts: whatever its size (the
    # caller's row aside: app.auth.caller).
    assert len(small_reads) == len(large_reads) == 2, large_reads

    prefix = "http://testserver/v1/play/"
    for item in large:
        number = int(item["title"].split()[-1])
        assert item["owner"]["name"] == f"Owner {number % 4}"
        assert item["duration_ms"] == DURATION_MS
        poster = item["poster_url"]
        assert poster.startswith(prefix) and poster.endswith("/poster.jpg")
        token = parse_token(poster.removeprefix(prefix).split("/")[0])
        assert str(token.clip_id) == item["id"]
        # Short-lived: the list's lifetime (poster_url_ttl_s), not a player's.
        assert before + settings.poster_url_ttl_s <= token.exp <= after + settings.poster_url_ttl_s
    # Signed: it works without Authorization (a redirect to the image).
    assert (
        await client.get(large[0]["poster_url"].removeprefix("http://testserver"))
    ).status_code == 302
    # No poster yet: null.
    everything = (
        await client.get("/v1/clips", params={"limit": 30}, headers=viewer.headers)
    ).json()
    uploading = [c for c in everything["items"] if c["title"] == "Still uploading"]
    assert [(c["poster_url"], c["duration_ms"]) for c in uploading] == [(None, None)]

    # The single clip carries the same poster.
    got = (await client.get(f"/v1/clips/{large[0]['id']}", headers=viewer.headers)).json()
    assert got["poster_url"].endswith("/poster.jpg") and got["owner"] == large[0]["owner"]


async def test_source_upload_accepts_octet_stream(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    doc = (await client.get("/openapi.json")).json()
    body = doc["paths"]["/v1/clips/{clip_id}/source"]["put"]["requestBody"]
    assert set(body["content"]) == {"video/*", "application/octet-stream"}

    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = (await create_clip(client, rep, size_bytes=4))["clip"]["id"]
    r = await client.put(
        f"/v1/clips/{clip_id}/source",
        content=b"\0\0\0\0",
        headers={**rep.headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "processing" and r.json()["owner"]["id"] == rep.id
