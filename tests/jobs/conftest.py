"""Fixtures for the job queue tests: an engine on the test database with an empty jobs
table, and small helpers to read and poke job rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import make_engine, make_sessionmaker
from app.jobs.models import Job
from app.jobs.service import enqueue


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
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            job = await self.get(job_id)
            if predicate(job):
                return job
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"job never reached the expected state: {job.__dict__}")
            await asyncio.sleep(0.02)


@pytest.fixture
def jobs(engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> Jobs:
    return Jobs(engine, sessionmaker)
