"""The Worker loop end to end, in-process, on the test database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.jobs.kinds import PRODUCT_KINDS, JobKind
from app.jobs.models import Job, JobStatus
from app.jobs.registry import (
    JobContext,
    JobServices,
    MissingHandlers,
    Registry,
    TaskContext,
)
from app.jobs.service import LeaseLost, PermanentJobError, claim, enqueue
from app.storage.base import Storage
from tests.helpers.waiting import eventually
from workers.events import Claimed, Draining, Finished, Idle
from workers.main import load_handlers, start_embedded_worker
from workers.runtime import Worker

from .conftest import Jobs

SettingsFactory = Callable[..., Settings]
# These handlers use no storage: any object will do.
FAKE_SERVICES = JobServices(storage=cast(Storage, object()))


@pytest.fixture
def worker_settings(make_settings: SettingsFactory) -> Settings:
    return make_settings(
        job_poll_interval_s=0.05, job_heartbeat_s=1, job_lease_s=30, sweep_interval_s=60
    )


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def make_worker(
    settings: Settings,
    engine: AsyncEngine,
    sm: async_sessionmaker[AsyncSession],
    registry: Registry,
    **kwargs: Any,
) -> Worker:
    kwargs.setdefault("concurrency", 4)
    return Worker(settings, engine, sm, FAKE_SERVICES, registry, **kwargs)


async def test_worker_runs_a_registered_handler(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    seen: list[JobContext] = []

    @registry.register("test.echo")
    async def echo(ctx: JobContext) -> None:
        seen.append(ctx)

    worker = make_worker(worker_settings, engine, jobs.sm, registry, worker_id="w-e2e")
    async with running(worker):
        ids = await jobs.add(3, kind="test.echo")
        for job_id in ids:
            job = await jobs.wait_for(job_id, lambda j: j.status == JobStatus.succeeded)
            assert (job.attempts, job.progress, job.worker_id) == (1, 1.0, "w-e2e")
            assert job.lease_expires_at is None
    assert sorted(ctx.payload["i"] for ctx in seen) == [0, 1, 2]
    ctx = seen[0]
    assert ctx.kind == "test.echo"
    assert ctx.attempts == 1
    assert ctx.services is FAKE_SERVICES
    assert ctx.settings is worker_settings
    assert ctx.engine is engine
    assert ctx.sessionmaker is jobs.sm


async def test_worker_leaves_unregistered_kinds_alone(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    registry.add("test.known", _noop)
    async with running(make_worker(worker_settings, engine, jobs.sm, registry)):
        [unknown] = await jobs.add(kind="test.unknown")
        [known] = await jobs.add(kind="test.known")
        await jobs.wait_for(known, lambda j: j.status == JobStatus.succeeded)
    assert (await jobs.get(unknown)).status == JobStatus.queued


async def _noop(_ctx: JobContext) -> None:
    return None


async def test_handler_errors_retry_or_fail_permanently(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()

    @registry.register("test.flaky")
    async def flaky(ctx: JobContext) -> None:
        raise RuntimeError("transient trouble")

    @registry.register("test.invalid")
    async def invalid(ctx: JobContext) -> None:
        raise PermanentJobError("invalid_media", "no video stream")

    async with running(make_worker(worker_settings, engine, jobs.sm, registry)):
        [flaky_id] = await jobs.add(kind="test.flaky")
        [invalid_id] = await jobs.add(kind="test.invalid")
        job = await jobs.wait_for(flaky_id, lambda j: j.attempts == 1 and j.last_error is not None)
        assert job.status == JobStatus.queued
        assert "RuntimeError: transient trouble" in (job.last_error or "")
        assert job.run_at > utcnow() + timedelta(seconds=10)
        job = await jobs.wait_for(invalid_id, lambda j: j.status == JobStatus.failed)
        assert job.last_error == "invalid_media: no video stream"
        assert job.attempts == 1


async def test_handler_reports_progress(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    proceed = asyncio.Event()

    @registry.register("test.progress")
    async def progress(ctx: JobContext) -> None:
        await ctx.progress(0.4)
        await ctx.progress(0.5)  # throttled: within a second of the last write
        await proceed.wait()

    async with running(make_worker(worker_settings, engine, jobs.sm, registry)):
        [job_id] = await jobs.add(kind="test.progress")
        job = await jobs.wait_for(job_id, lambda j: j.progress > 0)
        assert job.progress == pytest.approx(0.4)
        assert job.status == JobStatus.running
        proceed.set()
        await jobs.wait_for(job_id, lambda j: j.status == JobStatus.succeeded)


async def test_lost_lease_cancels_the_handler_and_records_nothing(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    started, cancelled = asyncio.Event(), asyncio.Event()

    @registry.register("test.slow")
    async def slow(ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            cancelled.set()
            raise

    worker = make_worker(worker_settings, engine, jobs.sm, registry)
    finished = worker.events.expect(Finished, lambda e: e.kind == "test.slow")
    async with running(worker):
        [job_id] = await jobs.add(kind="test.slow")
        await asyncio.wait_for(started.wait(), 10)
        # Another worker took the job over (as after an expired lease).
        await jobs.set(job_id, worker_id="thief", attempts=2)
        await asyncio.wait_for(cancelled.wait(), 5)  # at the next heartbeat (1 s)
        assert (await asyncio.wait_for(finished, 10)).outcome == "lease-lost"
    job = await jobs.get(job_id)
    assert (job.status, job.worker_id, job.attempts) == (JobStatus.running, "thief", 2)


@pytest.mark.parametrize("check", ["progress", "heartbeat"])
async def test_progress_and_heartbeat_raise_lease_lost(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs, check: str
) -> None:
    registry = Registry()
    checked, stolen = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    @registry.register("test.reporting")
    async def reporting(ctx: JobContext) -> None:
        await ctx.heartbeat()  # still ours: no error
        checked.set()
        await stolen.wait()
        try:
            # heartbeat: what a handler calls before publishing a result
            await (ctx.progress(0.5) if check == "progress" else ctx.heartbeat())
        except LeaseLost:
            outcome.append("lease lost")
            raise

    worker = make_worker(worker_settings, engine, jobs.sm, registry)
    finished = worker.events.expect(Finished, lambda e: e.kind == "test.reporting")
    async with running(worker):
        [job_id] = await jobs.add(kind="test.reporting")
        await asyncio.wait_for(checked.wait(), 10)
        await jobs.set(job_id, worker_id="thief")
        stolen.set()
        assert (await asyncio.wait_for(finished, 10)).outcome == "lease-lost"
    assert outcome == ["lease lost"]
    assert (await jobs.get(job_id)).worker_id == "thief"


async def test_idle_worker_wakes_at_once_on_a_local_enqueue(
    make_settings: SettingsFactory, engine: AsyncEngine, jobs: Jobs
) -> None:
    settings = make_settings(job_poll_interval_s=30, sweep_interval_s=60)
    registry = Registry()
    handled = asyncio.Event()

    @registry.register("test.wake")
    async def wake(ctx: JobContext) -> None:
        handled.set()

    worker = make_worker(settings, engine, jobs.sm, registry, listen=False)
    idle = worker.events.expect(Idle)
    async with running(worker):
        await asyncio.wait_for(idle, 10)  # past the first (empty) claim: now waiting 30 s
        await jobs.add(kind="test.wake")  # commits; enqueue wakes this process's workers
        await asyncio.wait_for(handled.wait(), 3)


async def test_idle_worker_wakes_without_a_local_signal(
    make_settings: SettingsFactory, engine: AsyncEngine, jobs: Jobs, is_pg: bool
) -> None:
    """PostgreSQL: NOTIFY from another connection wakes an idle worker whose poll
    interval is long. SQLite has no NOTIFY: the poll picks the job up."""
    settings = make_settings(job_poll_interval_s=30 if is_pg else 0.2, sweep_interval_s=60)
    registry = Registry()
    handled = asyncio.Event()

    @registry.register("test.wake")
    async def wake(ctx: JobContext) -> None:
        handled.set()

    worker = make_worker(settings, engine, jobs.sm, registry, local_wakeups=False)
    # PostgreSQL: idle while LISTEN is on, so that claim began after LISTEN's own wake-up and
    # the job added next is found only through its NOTIFY (or the poll 30 s later).
    idle = worker.events.expect(Idle, lambda _: worker.listening.is_set() or not is_pg)
    async with running(worker):
        if is_pg:
            await asyncio.wait_for(worker.listening.wait(), 5)
        await asyncio.wait_for(idle, 10)
        await jobs.add(kind="test.wake")
        await asyncio.wait_for(handled.wait(), 3)


async def test_periodic_tasks_and_the_lease_sweep_run(
    make_settings: SettingsFactory, engine: AsyncEngine, jobs: Jobs
) -> None:
    settings = make_settings(job_poll_interval_s=0.05, sweep_interval_s=0.05)
    registry = Registry()
    calls: list[TaskContext] = []

    async def tick(ctx: TaskContext) -> None:
        calls.append(ctx)

    registry.register_periodic("test.tick", 0.05, tick)
    # A job of a kind this worker does not run, whose worker died: only the sweep sees it.
    [orphan] = await jobs.add(kind="test.elsewhere")
    await claim(engine, "dead-worker", kinds=None, limit=1, lease_s=30)
    await jobs.set(orphan, lease_expires_at=utcnow() - timedelta(seconds=1))
    async with running(make_worker(settings, engine, jobs.sm, registry)):
        job = await jobs.wait_for(orphan, lambda j: j.status == JobStatus.queued)
        await eventually(lambda: len(calls) >= 2, what="two runs of test.tick")
    assert len(calls) >= 2
    assert job.worker_id is None
    assert calls[0].services is FAKE_SERVICES


async def test_stop_lets_running_jobs_finish_within_the_grace_period(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    started, finish = asyncio.Event(), asyncio.Event()

    @registry.register("test.short")
    async def short(ctx: JobContext) -> None:
        started.set()
        await finish.wait()  # still running after the stop, until the test lets it end

    worker = make_worker(worker_settings, engine, jobs.sm, registry, grace_s=10)
    draining = worker.events.expect(Draining)
    async with running(worker) as stop:
        [job_id] = await jobs.add(kind="test.short")
        await asyncio.wait_for(started.wait(), 10)
        stop.set()
        assert (await asyncio.wait_for(draining, 10)).running == 1
        [later] = await jobs.add(kind="test.short")  # not claimed once stopping
        finish.set()
    assert (await jobs.get(job_id)).status == JobStatus.succeeded
    assert (await jobs.get(later)).status == JobStatus.queued
    assert worker.running_jobs == 0


async def test_stop_releases_jobs_that_outlive_the_grace_period(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    started = asyncio.Event()

    @registry.register("test.endless")
    async def endless(ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    worker = make_worker(worker_settings, engine, jobs.sm, registry, grace_s=0.2)
    async with running(worker) as stop:
        [job_id] = await jobs.add(kind="test.endless")
        await asyncio.wait_for(started.wait(), 10)
        stop.set()
    job = await jobs.get(job_id)
    assert (job.status, job.attempts, job.worker_id, job.lease_expires_at) == (
        JobStatus.queued,
        0,
        None,
        None,
    )


async def test_a_handler_ignoring_cancellation_still_has_its_job_released(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    started, finish = asyncio.Event(), asyncio.Event()

    @registry.register("test.stubborn")
    async def stubborn(ctx: JobContext) -> None:
        started.set()
        while not finish.is_set():
            try:
                await finish.wait()
            except asyncio.CancelledError:
                continue  # a badly behaved handler

    worker = make_worker(worker_settings, engine, jobs.sm, registry, grace_s=0.1)
    worker.cancel_timeout_s = 0.2
    finished = worker.events.expect(Finished, lambda e: e.kind == "test.stubborn")
    async with running(worker) as stop:
        [job_id] = await jobs.add(kind="test.stubborn")
        await asyncio.wait_for(started.wait(), 10)
        stop.set()
    job = await jobs.get(job_id)
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.queued, 0, None)
    assert not finished.done()
    # When the handler finally returns, its supervisor records nothing.
    finish.set()
    assert (await asyncio.wait_for(finished, 10)).outcome == "released"  # by the drain
    assert (await jobs.get(job_id)).status == JobStatus.queued


async def test_a_handler_cancelling_itself_counts_as_a_failure(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()

    @registry.register("test.self_cancel")
    async def self_cancel(ctx: JobContext) -> None:
        raise asyncio.CancelledError

    async with running(make_worker(worker_settings, engine, jobs.sm, registry)):
        [job_id] = await jobs.add(kind="test.self_cancel")
        job = await jobs.wait_for(job_id, lambda j: j.last_error is not None)
    assert (job.status, job.attempts) == (JobStatus.queued, 1)
    assert "CancelledError" in (job.last_error or "")


async def test_cancelling_the_worker_releases_its_jobs(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    started = asyncio.Event()

    @registry.register("test.endless")
    async def endless(ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    worker = make_worker(worker_settings, engine, jobs.sm, registry, grace_s=30)
    task = asyncio.create_task(worker.run(asyncio.Event()))
    [job_id] = await jobs.add(kind="test.endless")
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert (await jobs.get(job_id)).status == JobStatus.queued


async def test_embedded_worker(worker_settings: Settings, engine: AsyncEngine, jobs: Jobs) -> None:
    registry = Registry()
    done: list[uuid.UUID] = []

    @registry.register("test.embedded")
    async def embedded(ctx: JobContext) -> None:
        done.append(ctx.job_id)

    handle = start_embedded_worker(
        worker_settings, engine, jobs.sm, services=FAKE_SERVICES, registry=registry, concurrency=1
    )
    try:
        async with jobs.sm.begin() as session:
            job = await enqueue(session, "test.embedded", {})
        await jobs.wait_for(job.id, lambda j: j.status == JobStatus.succeeded)
    finally:
        await asyncio.wait_for(handle.stop(), 10)
    await handle.stop()  # idempotent
    assert done == [job.id]
    assert handle.task.done()


async def test_concurrency_limits_jobs_in_flight(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()
    in_flight, peak = 0, 0
    full = asyncio.Event()

    @registry.register("test.count")
    async def count(ctx: JobContext) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            full.set()
        await full.wait()  # the first jobs overlap until the worker's 3 slots are taken
        in_flight -= 1

    ids = await jobs.add(12, kind="test.count")
    async with running(make_worker(worker_settings, engine, jobs.sm, registry, concurrency=3)):
        for job_id in ids:
            await jobs.wait_for(job_id, lambda j: j.status == JobStatus.succeeded)
    assert peak == 3
    assert await jobs.count(Job.status == JobStatus.succeeded) == 12


def test_a_worker_refuses_to_start_without_a_handler_for_a_required_kind(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry(required=[JobKind("test.required")])
    registry.add("test.other_kind", _noop)
    with pytest.raises(MissingHandlers, match=r"test\.required"):
        make_worker(worker_settings, engine, jobs.sm, registry)


def test_the_product_registry_has_a_handler_for_every_product_kind() -> None:
    registry = load_handlers()
    assert registry.required == PRODUCT_KINDS
    registry.check()
    assert {kind.name for kind in PRODUCT_KINDS} <= registry.kinds


async def test_worker_events_report_each_attempt_and_its_outcome(
    worker_settings: Settings, engine: AsyncEngine, jobs: Jobs
) -> None:
    registry = Registry()

    @registry.register("test.events_ok")
    async def ok(ctx: JobContext) -> None:
        return None

    @registry.register("test.events_flaky")
    async def flaky(ctx: JobContext) -> None:
        raise RuntimeError("transient trouble")

    @registry.register("test.events_invalid")
    async def invalid(ctx: JobContext) -> None:
        raise PermanentJobError("invalid_media", "no video stream")

    @registry.register("test.events_last")
    async def last(ctx: JobContext) -> None:
        raise RuntimeError("no attempt left")

    worker = make_worker(worker_settings, engine, jobs.sm, registry)
    idle = worker.events.expect(Idle)
    claimed = worker.events.expect(Claimed, lambda e: e.kind == "test.events_ok")
    finished = {
        kind: worker.events.expect(Finished, lambda e, kind=kind: e.kind == kind)
        for kind in (
            "test.events_ok",
            "test.events_flaky",
            "test.events_invalid",
            "test.events_last",
        )
    }
    async with running(worker):
        assert (await asyncio.wait_for(idle, 10)).running == 0
        [ok_id] = await jobs.add(kind="test.events_ok")
        await jobs.add(kind="test.events_flaky")
        await jobs.add(kind="test.events_invalid")
        await jobs.add(kind="test.events_last", max_attempts=1)
        assert (await asyncio.wait_for(claimed, 10)) == Claimed(ok_id, "test.events_ok", 1)
        outcomes = {kind: (await asyncio.wait_for(f, 10)).outcome for kind, f in finished.items()}
    assert outcomes == {
        "test.events_ok": "succeeded",
        "test.events_flaky": "retrying",
        "test.events_invalid": "failed",
        "test.events_last": "dead",
    }
