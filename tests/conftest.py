"""Shared fixtures: one migrated database per xdist worker (SQLite, or PostgreSQL when
PEERPITCH_TEST_DATABASE_URL is set), an app per test, and API helpers."""

from __future__ import annotations

import os

# moto reads this at import: lets S3 multipart tests use tiny parts instead of 5 MiB ones.
os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", "1024")
# No test may wait on the cloud instance-metadata endpoint for credentials.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.db import Base, make_engine
from app.jobs.registry import JobServices, TaskContext
from app.main import create_app
from app.migrate import create_scratch_database, drop_scratch_database, upgrade_head
from app.orgs.service import create_org
from workers.main import load_handlers
from workers.runtime import Worker

# The S3 fixtures (moto's server over HTTP) for every test module.
pytest_plugins = ["tests.fixtures.s3"]

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"
PASSWORD = "correct-horse-battery"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database for this test process."""
    base = os.environ.get("PEERPITCH_TEST_DATABASE_URL")
    if base:
        name = f"pp_test_{os.getpid()}_{_worker()}"
        url = asyncio.run(create_scratch_database(base, name))
        upgrade_head(url, quiet=True)
        yield url
        asyncio.run(drop_scratch_database(base, name))
    else:
        path = tmp_path_factory.mktemp("db") / "test.db"
        url = f"sqlite+aiosqlite:///{path}"
        upgrade_head(url, quiet=True)
        yield url


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


async def truncate_all(url: str) -> None:
    """Empty every table of the test database at ``url``."""
    engine = make_engine(url)
    tables = [t.name for t in Base.metadata.sorted_tables]
    async with engine.begin() as conn:
        if is_postgres(url):
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for name in reversed(tables):
                await conn.execute(text(f"DELETE FROM {name}"))
    await engine.dispose()


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Any:
    def _make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "development",
            "database_url": database_url,
            "secret_key": TEST_SECRET,
            "media_dir": tmp_path / "media",
            "embedded_worker": False,
            "log_format": "console",
            # No transcripts unless a test asks: a ready pitch's speech job stays cheap.
            "asr_engine": "none",
        }
        values.update(overrides)
        return Settings(**values)

    return _make


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings()  # type: ignore[no-any-return]


@pytest.fixture
async def app(settings: Settings, database_url: str) -> AsyncIterator[Any]:
    await truncate_all(database_url)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class Actor:
    id: str
    email: str
    role: str
    org_id: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class OrgCtx:
    client: httpx.AsyncClient
    org_id: str
    admin: Actor
    users: dict[str, Actor] = field(default_factory=dict)

    async def add_user(self, role: str, name: str | None = None) -> Actor:
        email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        r = await self.client.post(
            "/v1/users",
            json={"email": email, "name": name or role, "role": role, "password": PASSWORD},
            headers=self.admin.headers,
        )
        assert r.status_code == 201, r.text
        return await login(self.client, email, r.json()["id"], role, self.org_id)


async def login(
    client: httpx.AsyncClient, email: str, user_id: str, role: str, org_id: str
) -> Actor:
    r = await client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    return Actor(user_id, email, role, org_id, body["access_token"], body["refresh_token"])


@pytest.fixture
def make_org(app: Any, client: httpx.AsyncClient) -> Any:
    """Create an organization with an admin directly through the service, logged in."""

    async def _make(name: str = "Acme") -> OrgCtx:
        email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
        async with app.state.sessionmaker.begin() as session:
            created = await create_org(
                session,
                name=name,
                admin_email=email,
                admin_password=PASSWORD,
                admin_name=f"{name} admin",
            )
            org_id, admin_id = str(created.org.id), str(created.admin.id)
        admin = await login(client, email, admin_id, "admin", org_id)
        return OrgCtx(client=client, org_id=org_id, admin=admin)

    return _make


def task_context(app: Any) -> TaskContext:
    """What a worker hands periodic tasks, built from a test app's state."""
    return TaskContext(
        settings=app.state.settings,
        engine=app.state.engine,
        sessionmaker=app.state.sessionmaker,
        services=JobServices(storage=app.state.storage),
        worker_id="test",
    )


@asynccontextmanager
async def running_worker(app: Any, concurrency: int = 2) -> AsyncIterator[Worker]:
    """A real Worker with the product's handlers, on the test app's engine and storage."""
    worker = Worker(
        app.state.settings,
        app.state.engine,
        app.state.sessionmaker,
        JobServices(storage=app.state.storage),
        load_handlers(),
        concurrency,
        grace_s=5,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
