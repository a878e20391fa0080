"""PostgreSQL connections killed under load: 503 database_unavailable, never a 500; recovery
within 5 s; every acknowledged write is kept.

PostgreSQL only (it runs, not skips, in the PostgreSQL pass of CI): backends of this test
process's own scratch database are ended with pg_terminate_backend, never the shared cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PASSWORD, is_postgres


async def _terminate_backends(database_url: str) -> int:
    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            url.database,
        )
        return len(rows)
    finally:
        await conn.close()


async def test_killed_connections_answer_503_and_recover(
    database_url: str, make_org: Any, client: Any
) -> None:
    if not is_postgres(database_url):
        pytest.skip("pg_terminate_backend needs PostgreSQL")
    org = await make_org()
    headers = org.admin.headers
    statuses: dict[int, int] = {}
    bad: list[str] = []
    acknowledged: list[str] = []
    stop = asyncio.Event()

    def record(r: Any) -> None:
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code >= 500:
            body = r.json()["error"]
            if (
                r.status_code != 503
                or body["code"] != "database_unavailable"
                or "retry-after" not in r.headers
            ):
                bad.append(f"{r.status_code} {r.text[:200]}")

    async def reader() -> None:
        while not stop.is_set():
            for path in ("/v1/clips", "/v1/me", "/v1/people"):
                record(await asyncio.wait_for(client.get(path, headers=headers), 10))

    async def writer() -> None:
        while not stop.is_set():
            email = f"w-{uuid.uuid4().hex[:10]}@example.com"
            r = await asyncio.wait_for(
                client.post(
                    "/v1/users",
                    json={"email": email, "name": "w", "role": "rep", "password": PASSWORD},
                    headers=headers,
                ),
                10,
            )
            record(r)
            if r.status_code == 201:
                acknowledged.append(r.json()["id"])

    tasks = [asyncio.create_task(reader()) for _ in range(3)] + [
        asyncio.create_task(writer()) for _ in range(2)
    ]
    killed = 0
    for _ in range(3):
        await asyncio.sleep(0.4)
        killed += await _terminate_backends(database_url)
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks)

    # Recovery: the first successful readyz after the last kill, without any restart.
    started = time.monotonic()
    while True:
        r = await client.get("/readyz")
        if r.status_code == 200:
            break
        assert time.monotonic() - started < 5, r.text
        await asyncio.sleep(0.05)
    recovery_s = time.monotonic() - started
    print(f"killed={killed} statuses={statuses} recovery_s={recovery_s:.3f}")

    assert killed > 0
    assert not bad, bad[:5]
    assert statuses.get(500, 0) == 0
    assert statuses.get(200, 0) > 0
    for user_id in acknowledged:  # every acknowledged write survived
        r = await client.get(f"/v1/users/{user_id}", headers=headers)
        assert r.status_code == 200, r.text


async def test_database_unreachable_answers_503_not_500(make_settings: Any) -> None:
    """A database that cannot be opened at all (here: a path that cannot exist on SQLite, a
    closed port on PostgreSQL): requests that need it answer 503 with Retry-After."""
    import httpx

    from app.main import create_app

    base = make_settings()
    if is_postgres(base.database_url):
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    else:
        url = "sqlite+aiosqlite:////nonexistent-dir/peerpitch-fault.db"
    application = create_app(make_settings(database_url=url))
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/v1/auth/token", json={"email": "a@example.com", "password": "x" * 12})
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        assert r.headers["retry-after"] == "2"
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["error"]["details"]["database"] == "unavailable"
