"""Fixtures for the job queue tests: an engine on the test database with an empty jobs
table, and small helpers to read and poke job rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import make_engine, make_sessionmaker
from app.jobs.kinds import JobKind
from app.jobs.models import Job
from app.jobs.service import enqueue
from tests.helpers.waiting import eventually

# Kinds these tests enqueue without registering a handler in this process (a kind with a
# handler is declared by registering it). Declared, as product code declares its own.
TEST_KINDS = tuple(
    JobKind(name)
    for name in (
        "test.noop",
        "test.sleep",  # handled in a worker subprocess (sample_handlers)
        "test.unknown",
        "test.other",
        "test.elsewhere",
        "clip.transcode",
    )
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.execute(delete(Job))
    yield eng
    await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
def is_pg(database_url: str) -> bool:
    return database_url.startswith("postgresql")


class Jobs:
    """Test helpers over the jobs table."""

    def __init__(self, engine: AsyncEngine, sm: async_sessionmaker[AsyncSession]) -> None:
        self.engine = engine
        self.sm = sm

    async def add(self, n: int = 1, kind: str = "test.noop", **kwargs: Any) -> list[uuid.UUID]:
        async with self.sm.begin() as session:
            jobs = [await enqueue(session, kind, {"i": i}, **kwargs) for i in range(n)]
            return [job.id for job in jobs]

    async def get(self, job_id: uuid.UUID) -> Job:
        async with self.sm() as session:
            job = await session.get(Job, job_id)
            assert job is not None
            return job

    async def set(self, job_id: uuid.UUID, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(Job).where(Job.id == job_id).values(**values))

    async def count(self, *where: Any) -> int:
        # A plain (deferred) read: SQLite's default here is BEGIN IMMEDIATE, which would
        # wait for a test's own open write transaction.
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_begin="DEFERRED")
            stmt = select(func.count()).select_from(Job).where(*where)
            return int((await conn.execute(stmt)).scalar_one())

    async def wait_for(
        self, job_id: uuid.UUID, predicate: Callable[[Job], bool], timeout: float = 10.0
    ) -> Job:
        """The job's row once ``predicate`` holds for it (written by a worker, maybe in
        another process: polled)."""
        return await eventually(
            lambda: self.get(job_id),
            until=predicate,
            timeout=timeout,
            what=f"job {job_id} to reach the expected state",
        )


@pytest.fixture
def jobs(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> Jobs:
    return Jobs(engine, sessionmaker)
