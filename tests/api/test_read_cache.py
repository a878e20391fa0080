"""The per-process caches of the authenticated path: kept answers are never staler than an
uncached read (feedback pages, prep kits), and a cached caller is bounded by
PEERPITCH_AUTH_RECHECK_S (≤ 1 s) on every process, at once on the one that changed it.

"Another process" is a second app on the same database: its own caches, its own sessions,
nothing shared in memory with the first.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, text

from app.main import create_app
from app.readcache.cache import WATCHED_TABLES
from app.readcache.models import ReadVersion
from tests.api.feedback_helpers import post_feedback
from tests.helpers.api import exemplar_clip, playable_clip

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def other_process(settings: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A second API 'process': its own app (caches, pools, sessions) on the same database."""
    other = create_app(settings.model_copy())
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield other, c


async def page(client: httpx.AsyncClient, actor: Any, clip_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/clips/{clip_id}/feedback", headers=actor.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_feedback_page_shows_every_write_at_the_next_read_on_every_process(
    app: Any, client: httpx.AsyncClient, settings: Any, make_org: Any
) -> None:
    org = await make_org()
    owner, peer = await org.add_user("rep"), await org.add_user("rep", name="Pat")
    clip_id = await playable_clip(app, client, owner)
    first = (await post_feedback(client, owner, clip_id, body="first")).json()

    async with other_process(settings) as (other, other_client):
        assert [t["body"] for t in (await page(other_client, peer, clip_id))["items"]] == ["first"]
        assert len(other.state.feedback_pages) == 1  # kept
        again = await page(other_client, peer, clip_id)
        assert [t["body"] for t in again["items"]] == ["first"]

        # Writes through the first process, each seen by the next read of the second.
        await post_feedback(client, owner, clip_id, body="second", timestamp_ms=2000)
        bodies = [t["body"] for t in (await page(other_client, peer, clip_id))["items"]]
        assert bodies == ["first", "second"]

        r = await client.post(f"/v1/feedback/{first['id']}/reactions/helpful", headers=peer.headers)
        assert r.status_code in (200, 201, 204), r.text
        item = (await page(other_client, peer, clip_id))["items"][0]
        assert (item["helpful_count"], item["reacted_by_me"]) == (1, True)

        r = await client.patch(
            f"/v1/users/{owner.id}", json={"name": "Renamed"}, headers=org.admin.headers
        )
        assert r.status_code == 200, r.text
        item = (await page(other_client, peer, clip_id))["items"][0]
        assert item["author"]["name"] == "Renamed"

        # Made private: the peer's kept page is not served again.
        r = await client.patch(
            f"/v1/clips/{clip_id}", json={"visibility": "private"}, headers=owner.headers
        )
        assert r.status_code == 200, r.text
        r = await other_client.get(f"/v1/clips/{clip_id}/feedback", headers=peer.headers)
        assert r.status_code == 404, r.text


async def test_a_prep_kit_shows_every_write_at_the_next_read_and_signs_its_urls_again(
    app: Any, client: httpx.AsyncClient, settings: Any, make_org: Any
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    coach = await org.add_user("coach")
    best = await exemplar_clip(app, client, top, coach, title="Best close")

    async with other_process(settings) as (other, other_client):
        r1 = await other_client.get("/v1/prep", params={"stage": "closing"}, headers=rep.headers)
        assert r1.status_code == 200, r1.text
        assert r1.json()["tips"] == []
        r2 = await other_client.get("/v1/prep", params={"stage": "closing"}, headers=rep.headers)
        assert len(other.state.prep_kits) == 1  # kept
        assert r2.headers["etag"] == r1.headers["etag"]
        # Kept content, URLs signed for this answer.
        assert r2.json()["generated_at"] >= r1.json()["generated_at"]
        assert r2.json()["urls_expire_at"] >= r1.json()["urls_expire_at"]
        assert r2.json()["exemplars"][0]["hls_url"]
        assert r2.json()["exemplars"][0]["clip_id"] == best

        await post_feedback(client, coach, best, body="Notice the pause")
        r3 = await other_client.get("/v1/prep", params={"stage": "closing"}, headers=rep.headers)
        assert [t["body"] for t in r3.json()["tips"]] == ["Notice the pause"]
        assert r3.headers["etag"] != r1.headers["etag"]

        r = await client.delete(f"/v1/clips/{best}/exemplar", headers=coach.headers)
        assert r.status_code in (200, 204), r.text
        r4 = await other_client.get("/v1/prep", params={"stage": "closing"}, headers=rep.headers)
        assert r4.json()["exemplars"] == []


@pytest.mark.parametrize("change", ["deactivate", "demote"])
async def test_a_deactivation_or_role_change_applies_within_the_recheck_bound_everywhere(
    client: httpx.AsyncClient, settings: Any, make_org: Any, change: str
) -> None:
    org = await make_org()
    coach = await org.add_user("coach")
    async with other_process(settings) as (other, other_client):
        now = [1000.0]
        other.state.callers.clock = lambda: now[0]
        bound = other.state.settings.auth_recheck_s
        assert 0 < bound <= 1
        r = await other_client.get("/v1/me", headers=coach.headers)
        assert r.json()["role"] == "coach"  # the other process keeps the caller from now

        body = {"is_active": False} if change == "deactivate" else {"role": "rep"}
        r = await client.patch(f"/v1/users/{coach.id}", json=body, headers=org.admin.headers)
        assert r.status_code == 200, r.text
        # At once on the process that made the change.
        r = await client.get("/v1/me", headers=coach.headers)
        assert r.status_code == 401 if change == "deactivate" else r.json()["role"] == "rep"

        # On the other, once the kept row is `bound` old (≤ 1 s).
        now[0] += bound
        r = await other_client.get("/v1/me", headers=coach.headers)
        if change == "deactivate":
            assert r.status_code == 401, r.text
        else:
            assert r.status_code == 200 and r.json()["role"] == "rep", r.text


def test_the_recheck_bound_cannot_exceed_one_second(make_settings: Any) -> None:
    assert make_settings(auth_recheck_s=1).auth_recheck_s == 1
    with pytest.raises(ValidationError):
        make_settings(auth_recheck_s=1.5)


async def test_requests_with_a_read_version_read_the_caller_each_time(
    app: Any, client: httpx.AsyncClient, settings: Any, make_org: Any
) -> None:
    """The cached reads need the version read before they compute: their caller is never
    the kept one (a kept caller carries no version)."""
    org = await make_org()
    rep = await org.add_user("rep")
    caller = await app.state.callers.get(uuid.UUID(rep.id), fresh=False)
    assert caller.read_version is not None
    kept = await app.state.callers.get(uuid.UUID(rep.id), fresh=False)
    assert kept.read_version is None  # reused within the bound: not for cached reads
    fresh = await app.state.callers.get(uuid.UUID(rep.id), fresh=True)
    assert fresh.read_version is not None


async def read_version(app: Any, org_id: str) -> int:
    async with app.state.sessionmaker() as session:
        version = await session.scalar(
            select(ReadVersion.version).where(ReadVersion.org_id == uuid.UUID(org_id))
        )
    return int(version or 0)


async def test_writes_outside_the_orm_move_the_read_version_once_per_transaction(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await playable_clip(app, client, rep)
    await post_feedback(client, rep, clip_id, body="one")
    await post_feedback(client, rep, clip_id, body="two", timestamp_ms=2000)
    before = await read_version(app, org.org_id)
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            text("UPDATE feedback SET body = body || '!' WHERE clip_id = :c"),
            {"c": uuid.UUID(clip_id).hex if "sqlite" in str(app.state.engine.url) else clip_id},
        )
    after = await read_version(app, org.org_id)
    assert after > before
    if app.state.engine.dialect.name == "postgresql":
        assert after == before + 1  # two rows, one transaction, one step
    # A transaction that changes nothing watched leaves it alone.
    async with app.state.sessionmaker.begin() as session:
        await session.execute(text("SELECT 1"))
    assert await read_version(app, org.org_id) == after


def test_the_migration_watches_the_tables_the_cache_names() -> None:
    path = next((ROOT / "alembic" / "versions").glob("*_read_versions.py"))
    spec = importlib.util.spec_from_file_location("read_versions_migration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert tuple(module.TABLES) == WATCHED_TABLES
