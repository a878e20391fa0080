"""Watch progress: upserts, monotonic watched_ms, sticky completion, distinct viewer counts,
who may list viewers, and the caller's history."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from sqlalchemy import event, update

from app.clips.models import Clip
from app.playback.signing import parse_token
from app.views.models import ClipView
from tests.helpers.api import DURATION_MS, create_clip, playable_clip
from tests.helpers.sql_count import queries, statements_during


async def report(
    client: httpx.AsyncClient, actor: Any, clip_id: str, **body: Any
) -> httpx.Response:
    payload = {"position_ms": 0, "watched_ms": 0, "completed": False, **body}
    return await client.post(f"/v1/clips/{clip_id}/views", json=payload, headers=actor.headers)


async def test_progress_upserts_grow_and_stick(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, rep = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)

    r = await report(client, rep, clip_id, position_ms=3000, watched_ms=3000)
    assert r.status_code == 200, r.text
    assert (r.json()["position_ms"], r.json()["watched_ms"]) == (3000, 3000)
    # Idempotent: the same report again changes nothing.
    again = await report(client, rep, clip_id, position_ms=3000, watched_ms=3000)
    assert {k: v for k, v in again.json().items() if k != "last_watched_at"} == {
        "position_ms": 3000, "watched_ms": 3000, "completed": False,
    }  # fmt: skip
    # Seeking back: position follows, watched_ms never decreases.
    r = await report(client, rep, clip_id, position_ms=1000, watched_ms=1500)
    assert (r.json()["position_ms"], r.json()["watched_ms"]) == (1000, 3000)
    r = await report(client, rep, clip_id, position_ms=DURATION_MS, watched_ms=9000, completed=True)
    assert r.json()["completed"] is True
    r = await report(client, rep, clip_id, position_ms=200, watched_ms=9500, completed=False)
    assert r.json() | {"last_watched_at": None} == {
        "position_ms": 200, "watched_ms": 9500, "completed": True, "last_watched_at": None,
    }  # fmt: skip

    # Beyond the duration, negative, or unknown fields: 422.
    r = await report(client, rep, clip_id, position_ms=DURATION_MS + 1)
    assert r.status_code == 422 and r.json()["error"]["code"] == "position_out_of_range"
    assert (await report(client, rep, clip_id, watched_ms=-1)).status_code == 422
    assert (await report(client, rep, clip_id, extra=1)).status_code == 422

    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert clip["view_count"] == 1
    assert clip["my_progress"]["watched_ms"] == 9500 and clip["my_progress"]["completed"]
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=owner.headers)).json()
    assert clip["view_count"] == 1 and clip["my_progress"] is None


async def test_completion_counts_from_90_percent_watched(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, rep = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    done = DURATION_MS * 9 // 10

    async def shown() -> list[bool]:
        """Completion as every read shows it: the clip, the viewer list, the history."""
        clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
        viewers = await client.get(f"/v1/clips/{clip_id}/views", headers=owner.headers)
        history = await client.get("/v1/me/history", headers=rep.headers)
        return [
            clip["my_progress"]["completed"],
            viewers.json()["items"][0]["progress"]["completed"],
            history.json()["items"][0]["progress"]["completed"],
            history.json()["items"][0]["clip"]["my_progress"]["completed"],
        ]

    # The probe's report: "completed" with nothing watched. Stored, not counted.
    for _ in range(3):
        r = await report(client, rep, clip_id, position_ms=DURATION_MS, completed=True)
        assert r.status_code == 200 and r.json()["completed"] is False
    assert await shown() == [False] * 4
    r = await report(client, rep, clip_id, position_ms=DURATION_MS, watched_ms=done - 1)
    assert (r.json()["watched_ms"], r.json()["completed"]) == (done - 1, False)
    # 90 % watched: the end it reported earlier now counts, everywhere.
    r = await report(client, rep, clip_id, position_ms=DURATION_MS, watched_ms=done)
    assert r.json()["completed"] is True
    assert await shown() == [True] * 4

    # Watching 90 % without ever reaching the end is not a completion either.
    other = await org.add_user("rep")
    r = await report(client, other, clip_id, position_ms=5000, watched_ms=DURATION_MS)
    assert r.json()["completed"] is False


async def test_rows_stored_before_the_rule_are_judged_by_it(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    """No data migration: a completion stored without the watching (as the API accepted
    before the rule) reads as not completed."""
    org = await make_org()
    owner, rep = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await playable_clip(app, client, owner)
    assert (await report(client, rep, clip_id, watched_ms=10)).status_code == 200
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(ClipView).where(ClipView.clip_id == uuid.UUID(clip_id)).values(completed=True)
        )
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert clip["my_progress"]["completed"] is False
    # With the watching it counts; against an unknown duration it cannot.
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(ClipView)
            .where(ClipView.clip_id == uuid.UUID(clip_id))
            .values(watched_ms=DURATION_MS)
        )
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert clip["my_progress"]["completed"] is True
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Clip).where(Clip.id == uuid.UUID(clip_id)).values(duration_ms=None)
        )
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert clip["my_progress"]["completed"] is False


async def test_not_viewable_invisible_and_other_org(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Globex")
    owner, rep = await org.add_user("rep"), await org.add_user("rep")
    pending = (await create_clip(client, owner))["clip"]["id"]
    r = await report(client, owner, pending)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_viewable"
    private = await playable_clip(app, client, owner, visibility="private")
    assert (await report(client, rep, private)).status_code == 404
    assert (await report(client, other.admin, private)).status_code == 404
    assert (await client.get(f"/v1/clips/{private}/views", headers=rep.headers)).status_code == 404


async def test_counts_viewers_and_lists_without_n_plus_1(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    viewers = [await org.add_user("rep") for _ in range(3)]
    clips = [await playable_clip(app, client, owner) for _ in range(3)]
    for i, clip_id in enumerate(clips):
        for viewer in viewers[: i + 1]:
            for _ in range(2):  # repeated reports still count one viewer
                r = await report(client, viewer, clip_id, position_ms=100, watched_ms=100)
                assert r.status_code == 200

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(app.state.engine.sync_engine, "before_cursor_execute", count)
    try:
        r = await client.get("/v1/clips", headers=viewers[0].headers)
    finally:
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", count)
    items = {c["id"]: c for c in r.json()["items"]}
    assert [items[c]["view_count"] for c in clips] == [1, 2, 3]
    assert all(items[c]["my_progress"]["position_ms"] == 100 for c in clips)
    assert len([s for s in statements if "clip_views" in s]) == 1

    me = viewers[2]
    assert items[clips[0]]["view_count"] == 1
    r = await client.get("/v1/clips", headers=me.headers)
    mine = {c["id"]: c["my_progress"] for c in r.json()["items"]}
    assert mine[clips[0]] is None and mine[clips[2]] is not None


async def test_viewer_list_permissions_and_pagination(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, coach, rep = (
        await org.add_user("rep"),
        await org.add_user("coach"),
        await org.add_user("rep", name="Viewer"),
    )
    clip_id = await playable_clip(app, client, owner)
    viewers = [rep, coach, org.admin]
    for i, viewer in enumerate(viewers):
        await report(client, viewer, clip_id, position_ms=i * 1000, watched_ms=i * 1000)

    for allowed in (owner, coach, org.admin):
        r = await client.get(f"/v1/clips/{clip_id}/views", headers=allowed.headers)
        assert r.status_code == 200, r.text
    r = await client.get(f"/v1/clips/{clip_id}/views", headers=rep.headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await client.get(f"/v1/clips/{clip_id}/views", params=params, headers=owner.headers)
        seen += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    # Most recent first.
    assert [v["user_id"] for v in seen] == [org.admin.id, coach.id, rep.id]
    assert seen[2]["name"] == "Viewer" and seen[0]["progress"]["position_ms"] == 2000


async def test_history_newest_first_and_hides_gone_clips(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    owner, rep = await org.add_user("rep"), await org.add_user("rep")
    clips = [await playable_clip(app, client, owner) for _ in range(3)]
    for clip_id in clips:
        await report(client, rep, clip_id, position_ms=500, watched_ms=500)
    # Watching the first again moves it to the top.
    await report(client, rep, clips[0], position_ms=700, watched_ms=700)

    r = await client.get("/v1/me/history", params={"limit": 2}, headers=rep.headers)
    assert r.status_code == 200
    page1 = r.json()
    r = await client.get(
        "/v1/me/history", params={"cursor": page1["next_cursor"]}, headers=rep.headers
    )
    items = page1["items"] + r.json()["items"]
    assert [i["clip"]["id"] for i in items] == [clips[0], clips[2], clips[1]]
    assert items[0]["progress"]["position_ms"] == 700
    assert items[0]["clip"]["my_progress"]["position_ms"] == 700
    assert items[0]["clip"]["view_count"] == 1

    # Deleted, or made private by its owner: gone from the history.
    assert (await client.delete(f"/v1/clips/{clips[0]}", headers=owner.headers)).status_code == 204
    r = await client.patch(
        f"/v1/clips/{clips[1]}", json={"visibility": "private"}, headers=owner.headers
    )
    assert r.status_code == 200
    r = await client.get("/v1/me/history", headers=rep.headers)
    assert [i["clip"]["id"] for i in r.json()["items"]] == [clips[2]]
    assert (await client.get("/v1/me/history", headers=owner.headers)).json()["items"] == []


async def test_history_items_render_without_more_requests_in_flat_statements(
    app: Any, client: httpx.AsyncClient, make_org: Any, settings: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    owners = [await org.add_user("top_performer", name=f"Owner {i}") for i in range(4)]

    async def history(limit: int) -> tuple[list[dict[str, Any]], list[str]]:
        with statements_during(app) as statements:
            r = await client.get("/v1/me/history", params={"limit": limit}, headers=rep.headers)
        assert r.status_code == 200, r.text
        return r.json()["items"], queries(statements)

    for i in range(21):
        clip_id = await playable_clip(app, client, owners[i % 4], title=f"Pitch {i}")
        if i % 2 == 0:
            await _with_poster(app, clip_id)
        assert (await report(client, rep, clip_id, position_ms=i, watched_ms=i)).status_code == 200
    before = int(time.time())
    small, small_reads = await history(2)
    large, large_reads = await history(20)
    after = int(time.time())
    assert (len(small), len(large)) == (2, 20)
    # The page with each clip and its owner, the page's view counts (the caller aside).
    assert len(small_reads) == len(large_reads) == 2, large_reads

    prefix = "http://testserver/v1/play/"
    for item in large:
        clip, number = item["clip"], int(item["clip"]["title"].split()[-1])
        assert item["progress"]["position_ms"] == number
        assert clip["owner"] == {
            "id": owners[number % 4].id, "name": f"Owner {number % 4}", "role": "top_performer",
        }  # fmt: skip
        assert clip["duration_ms"] == DURATION_MS
        if number % 2:
            assert clip["poster_url"] is None
            continue
        token = parse_token(clip["poster_url"].removeprefix(prefix).split("/")[0])
        assert str(token.clip_id) == clip["id"]
        assert before + settings.poster_url_ttl_s <= token.exp <= after + settings.poster_url_ttl_s
    with_poster = next(i["clip"]["poster_url"] for i in large if i["clip"]["poster_url"])
    assert (await client.get(with_poster.removeprefix("http://testserver"))).status_code == 302


async def _with_poster(app: Any, clip_id: str) -> None:
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, uuid.UUID(clip_id))
        assert clip is not None and clip.media
        media = dict(clip.media) | {"poster": "poster.jpg"}
        await session.execute(update(Clip).where(Clip.id == clip.id).values(media=media))
