"""The queue primitives on the real database (SQLite, or PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_engine, utcnow
from app.jobs.kinds import UnknownJobKind
from app.jobs.models import Job, JobStatus
from app.jobs.service import (
    LEASE_EXPIRED,
    claim,
    complete,
    complete_many,
    enqueue,
    fail,
    heartbeat,
    heartbeat_many,
    recover_expired_leases,
    release,
    set_progress,
)

from .conftest import Jobs

LEASE = 60


async def test_enqueue_in_a_rolled_back_transaction_never_runs(
    engine: AsyncEngine, jobs: Jobs
) -> None:
    async with jobs.sm() as session:
        await enqueue(session, "test.noop", {"x": 1})
        await session.rollback()
    assert await claim(engine, "w1", kinds=None, limit=10, lease_s=LEASE) == []
    assert await jobs.count() == 0


async def test_enqueue_never_commits_the_callers_transaction(jobs: Jobs) -> None:
    async with jobs.sm() as session:
        job = await enqueue(session, "test.noop", {"x": 1}, priority=5, max_attempts=2)
        assert (job.status, job.priority, job.max_attempts, job.attempts) == (
            JobStatus.queued,
            5,
            2,
            0,
        )
        assert await jobs.count() == 0  # what another connection sees: nothing yet
        await session.commit()
    assert await jobs.count() == 1


async def test_claim_counts_the_attempt_and_takes_a_lease(engine: AsyncEngine, jobs: Jobs) -> None:
    [job_id] = await jobs.add()
    before = utcnow()
    [claimed] = await claim(engine, "w1", kinds={"test.noop"}, limit=5, lease_s=LEASE)
    assert claimed.id == job_id
    assert claimed.attempts == 1
    assert claimed.payload == {"i": 0}
    job = await jobs.get(job_id)
    assert job.status == JobStatus.running
    assert job.worker_id == "w1"
    assert job.attempts == 1
    assert job.lease_expires_at is not None
    assert job.lease_expires_at >= before + timedelta(seconds=LEASE - 1)
    # Running under a live lease: nobody else can claim it.
    assert await claim(engine, "w2", kinds=None, limit=5, lease_s=LEASE) == []


async def test_claim_order_due_time_and_kinds(engine: AsyncEngine, jobs: Jobs) -> None:
    [low] = await jobs.add(priority=200)
    [high] = await jobs.add(priority=10)
    [mid] = await jobs.add(priority=100)
    [later] = await jobs.add(priority=0, run_at=utcnow() + timedelta(hours=1))
    [other] = await jobs.add(kind="test.other", priority=0)

    claimed = await claim(engine, "w", kinds={"test.noop"}, limit=2, lease_s=LEASE)
    assert [c.id for c in claimed] == [high, mid]
    claimed = await claim(engine, "w", kinds={"test.noop"}, limit=5, lease_s=LEASE)
    assert [c.id for c in claimed] == [low]  # `later` is not due yet
    assert await claim(engine, "w", kinds=set(), limit=5, lease_s=LEASE) == []
    claimed = await claim(engine, "w", kinds=None, limit=5, lease_s=LEASE)
    assert [c.id for c in claimed] == [other]
    assert (await jobs.get(later)).status == JobStatus.queued


async def test_concurrent_claimers_never_get_the_same_job(database_url: str, jobs: Jobs) -> None:
    total = 200
    ids = set(await jobs.add(total))
    engines = [make_engine(database_url) for _ in range(2)]

    async def claimer(engine: AsyncEngine, name: str) -> list[uuid.UUID]:
        got: list[uuid.UUID] = []
        while True:
            batch = await claim(engine, name, kinds=None, limit=5, lease_s=LEASE)
            if not batch:
                return got
            got += [job.id for job in batch]

    try:
        results = await asyncio.gather(*(claimer(engines[i % 2], f"w{i}") for i in range(4)))
    finally:
        for eng in engines:
            await eng.dispose()
    claimed = [job_id for result in results for job_id in result]
    assert len(claimed) == len(set(claimed)) == total
    assert set(claimed) == ids
    assert await jobs.count(Job.attempts == 1, Job.status == JobStatus.running) == total


async def test_expired_lease_is_claimed_again(engine: AsyncEngine, jobs: Jobs) -> None:
    [job_id] = await jobs.add()
    [first] = await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE)
    # w1 died: its lease ran out.
    await jobs.set(job_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    [second] = await claim(engine, "w2", kinds=None, limit=1, lease_s=LEASE)
    assert second.id == job_id
    assert second.attempts == 2
    # The old owner can no longer touch it; the new one can.
    assert not await heartbeat(engine, job_id, "w1", lease_s=LEASE)
    assert not await complete(engine, job_id, "w1")
    assert await complete(engine, job_id, "w2", attempt=second.attempts)
    job = await jobs.get(job_id)
    assert (job.status, job.worker_id, job.progress) == (JobStatus.succeeded, "w2", 1.0)
    assert job.finished_at is not None
    assert job.lease_expires_at is None
    assert first.attempts == 1


async def test_a_worker_re_claiming_its_own_job_fences_the_old_run(
    engine: AsyncEngine, jobs: Jobs
) -> None:
    [job_id] = await jobs.add()
    [first] = await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE)
    await jobs.set(job_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    [second] = await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE)
    assert not await heartbeat(engine, job_id, "w1", lease_s=LEASE, attempt=first.attempts)
    assert await heartbeat(engine, job_id, "w1", lease_s=LEASE, attempt=second.attempts)


async def test_expired_lease_on_the_last_attempt_is_dead(engine: AsyncEngine, jobs: Jobs) -> None:
    [job_id] = await jobs.add(max_attempts=2)
    await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE)
    await jobs.set(job_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    await claim(engine, "w2", kinds=None, limit=1, lease_s=LEASE)
    await jobs.set(job_id, lease_expires_at=utcnow() - timedelta(seconds=1))
    assert await claim(engine, "w3", kinds=None, limit=1, lease_s=LEASE) == []
    job = await jobs.get(job_id)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.dead, 2, LEASE_EXPIRED)
    assert job.finished_at is not None
    assert job.lease_expires_at is None


async def test_one_claim_buries_exhausted_and_takes_due_jobs_in_order(
    engine: AsyncEngine, jobs: Jobs
) -> None:
    [exhausted] = await jobs.add(max_attempts=1, priority=1)
    [orphan] = await jobs.add(priority=20)
    await claim(engine, "dead-worker", kinds=None, limit=2, lease_s=LEASE)
    past = utcnow() - timedelta(seconds=1)
    await jobs.set(exhausted, lease_expires_at=past)
    await jobs.set(orphan, lease_expires_at=past)
    [later] = await jobs.add(priority=50)
    [first] = await jobs.add(priority=10)

    claimed = await claim(engine, "w1", kinds=None, limit=3, lease_s=LEASE)
    # The exhausted job took a slot of this claim, but is dead, not handed out.
    assert [(c.id, c.attempts) for c in claimed] == [(first, 1), (orphan, 2)]
    job = await jobs.get(exhausted)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.dead, 1, LEASE_EXPIRED)
    assert job.worker_id == "dead-worker"
    assert job.lease_expires_at is None
    assert job.finished_at is not None
    [c] = await claim(engine, "w1", kinds=None, limit=3, lease_s=LEASE)
    assert c.id == later


async def test_batched_heartbeats_and_completions(engine: AsyncEngine, jobs: Jobs) -> None:
    ids = await jobs.add(3)
    claimed = await claim(engine, "w1", kinds=None, limit=3, lease_s=5)
    await jobs.set(ids[2], worker_id="thief")
    claims = [(c.id, c.attempts) for c in claimed]
    owned = await heartbeat_many(engine, "w1", claims, lease_s=LEASE)
    assert owned == {(ids[0], 1), (ids[1], 1)}
    assert await heartbeat_many(engine, "w1", [], lease_s=LEASE) == set()
    for job_id in ids[:2]:
        job = await jobs.get(job_id)
        assert job.lease_expires_at is not None
        assert job.lease_expires_at > utcnow() + timedelta(seconds=LEASE - 5)
    done = await complete_many(engine, "w1", [*claims, (ids[0], 2)])
    assert done == {(ids[0], 1), (ids[1], 1)}
    assert await jobs.count(Job.status == JobStatus.succeeded) == 2
    assert (await jobs.get(ids[2])).status == JobStatus.running
    assert await complete_many(engine, "w1", claims) == set()  # already recorded


async def test_sweep_requeues_or_buries_expired_leases(engine: AsyncEngine, jobs: Jobs) -> None:
    [alive, orphan, exhausted] = await jobs.add(3, max_attempts=1)
    await jobs.set(orphan, max_attempts=3)
    await claim(engine, "w1", kinds=None, limit=3, lease_s=LEASE)
    past = utcnow() - timedelta(seconds=1)
    await jobs.set(orphan, lease_expires_at=past)
    await jobs.set(exhausted, lease_expires_at=past)

    result = await recover_expired_leases(engine)
    assert (result.requeued, result.dead) == (1, 1)
    job = await jobs.get(orphan)
    assert (job.status, job.worker_id, job.lease_expires_at) == (JobStatus.queued, None, None)
    assert job.attempts == 1  # the dead worker's attempt still counts
    assert (await jobs.get(exhausted)).status == JobStatus.dead
    assert (await jobs.get(alive)).status == JobStatus.running
    result = await recover_expired_leases(engine)
    assert (result.requeued, result.dead) == (0, 0)


async def test_failures_retry_with_backoff_then_die(engine: AsyncEngine, jobs: Jobs) -> None:
    [job_id] = await jobs.add(max_attempts=3)
    expected_base = {1: 15, 2: 60}
    for attempt in (1, 2):
        [claimed] = await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE)
        assert claimed.attempts == attempt
        now = utcnow()
        status = await fail(engine, job_id, "w1", f"boom {attempt}", attempt=attempt, now=now)
        assert status == JobStatus.queued
        job = await jobs.get(job_id)
        assert (job.status, job.worker_id, job.lease_expires_at) == (JobStatus.queued, None, None)
        assert job.last_error == f"boom {attempt}"
        delay = (job.run_at - now).total_seconds()
        base = expected_base[attempt]
        assert base * 0.8 - 0.01 <= delay <= base * 1.2 + 0.01
        # Not due yet; pretend the backoff elapsed.
        assert await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE) == []
        await jobs.set(job_id, run_at=utcnow())
    [claimed] = await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE)
    assert await fail(engine, job_id, "w1", "boom 3", attempt=3) == JobStatus.dead
    job = await jobs.get(job_id)
    assert (job.status, job.attempts, job.last_error) == (JobStatus.dead, 3, "boom 3")
    assert job.finished_at is not None
    await jobs.set(job_id, run_at=utcnow() - timedelta(hours=1))
    assert await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE) == []


async def test_permanent_error_fails_at_once(engine: AsyncEngine, jobs: Jobs) -> None:
    [job_id] = await jobs.add(max_attempts=5)
    await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE)
    status = await fail(engine, job_id, "w1", "invalid_media: no video", permanent=True)
    assert status == JobStatus.failed
    job = await jobs.get(job_id)
    assert (job.status, job.attempts, job.last_error) == (
        JobStatus.failed,
        1,
        "invalid_media: no video",
    )
    assert job.finished_at is not None
    await jobs.set(job_id, run_at=utcnow() - timedelta(hours=1))
    assert await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE) == []


async def test_only_the_owner_may_heartbeat_or_finish(engine: AsyncEngine, jobs: Jobs) -> None:
    [job_id] = await jobs.add()
    [claimed] = await claim(engine, "w1", kinds=None, limit=1, lease_s=5)
    assert not await heartbeat(engine, job_id, "intruder", lease_s=LEASE)
    assert not await heartbeat(engine, job_id, "w1", lease_s=LEASE, attempt=7)
    assert not await set_progress(engine, job_id, "intruder", 0.9)
    assert not await release(engine, job_id, "intruder")
    assert await fail(engine, job_id, "intruder", "x") is None
    assert not await complete(engine, job_id, "intruder")
    assert not await heartbeat(engine, uuid.uuid4(), "w1", lease_s=LEASE)

    assert await heartbeat(engine, job_id, "w1", lease_s=LEASE, progress=0.25)
    job = await jobs.get(job_id)
    assert job.lease_expires_at is not None
    assert job.lease_expires_at > claimed.lease_expires_at
    assert job.progress == 0.25
    assert await set_progress(engine, job_id, "w1", 1.5, attempt=1)
    assert (await jobs.get(job_id)).progress == 1.0
    assert (await jobs.get(job_id)).status == JobStatus.running


async def test_release_returns_the_job_without_counting_the_attempt(
    engine: AsyncEngine, jobs: Jobs
) -> None:
    [job_id] = await jobs.add()
    await claim(engine, "w1", kinds=None, limit=1, lease_s=LEASE)
    await heartbeat(engine, job_id, "w1", lease_s=LEASE, progress=0.5)
    assert await release(engine, job_id, "w1", attempt=1)
    job = await jobs.get(job_id)
    assert (job.status, job.attempts, job.worker_id, job.lease_expires_at, job.progress) == (
        JobStatus.queued,
        0,
        None,
        None,
        0.0,
    )
    [again] = await claim(engine, "w2", kinds=None, limit=1, lease_s=LEASE)
    assert (again.id, again.attempts) == (job_id, 1)


async def test_dedupe_key_returns_the_unfinished_job(engine: AsyncEngine, jobs: Jobs) -> None:
    async with jobs.sm.begin() as session:
        first = await enqueue(session, "clip.transcode", {"v": 1}, dedupe_key="clip:1")
        same = await enqueue(session, "clip.transcode", {"v": 2}, dedupe_key="clip:1")
        other = await enqueue(session, "clip.transcode", {"v": 3}, dedupe_key="clip:2")
        assert same.id == first.id
        assert other.id != first.id
    async with jobs.sm.begin() as session:
        again = await enqueue(session, "clip.transcode", {"v": 4}, dedupe_key="clip:1")
        assert again.id == first.id
        assert again.payload == {"v": 1}
    # Still deduplicated while running ...
    await claim(engine, "w1", kinds=None, limit=5, lease_s=LEASE)
    async with jobs.sm.begin() as session:
        running = await enqueue(session, "clip.transcode", {}, dedupe_key="clip:1")
        assert running.id == first.id
    # ... but a finished job frees the key.
    assert await complete(engine, first.id, "w1")
    async with jobs.sm.begin() as session:
        fresh = await enqueue(session, "clip.transcode", {"v": 5}, dedupe_key="clip:1")
        assert fresh.id != first.id
    assert await jobs.count() == 3


async def test_concurrent_enqueues_with_one_dedupe_key_make_one_job(jobs: Jobs) -> None:
    async with jobs.sm() as session_a:
        job_a = await enqueue(session_a, "clip.transcode", {}, dedupe_key="race")

        async def second() -> uuid.UUID:
            async with jobs.sm.begin() as session_b:
                # Waits for session_a's uncommitted row (PostgreSQL: the unique index;
                # SQLite: the write lock), then finds it.
                return (await enqueue(session_b, "clip.transcode", {}, dedupe_key="race")).id

        task = asyncio.create_task(second())
        # A sleep, not an event: this asserts that nothing happens (the second enqueue stays
        # blocked in the database), and a blocked statement signals nothing. A slow machine
        # can only make it pass for the wrong reason, never fail.
        await asyncio.sleep(0.2)
        assert not task.done()
        await session_a.commit()
        assert await asyncio.wait_for(task, 10) == job_a.id
    assert await jobs.count() == 1


@pytest.mark.parametrize("max_attempts", [0, -1])
async def test_enqueue_rejects_jobs_that_could_never_run(jobs: Jobs, max_attempts: int) -> None:
    async with jobs.sm() as session:
        with pytest.raises(ValueError, match="max_attempts"):
            await enqueue(session, "test.noop", {}, max_attempts=max_attempts)


async def test_an_undeclared_kind_is_refused_at_enqueue(jobs: Jobs) -> None:
    async with jobs.sm.begin() as session:
        with pytest.raises(UnknownJobKind):
            await enqueue(session, "test.never_declared", {})
    assert await jobs.count() == 0
