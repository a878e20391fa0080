"""The worker loop: claim due jobs into free slots, run their handlers concurrently while
heartbeating their leases, record outcomes, and shut down without stranding a job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.jobs.models import JobStatus
from app.jobs.registry import JobContext, JobServices, PeriodicTask, Registry, TaskContext
from app.jobs.registry import registry as default_registry
from app.jobs.service import (
    NOTIFY_CHANNEL,
    ClaimedJob,
    LeaseLost,
    PermanentJobError,
    add_local_waker,
    claim,
    complete_many,
    fail,
    heartbeat,
    heartbeat_many,
    recover_expired_leases,
    release,
    remove_local_waker,
)
from workers.events import Claimed, Draining, Finished, Idle, Outcome, WorkerEvents

log = logging.getLogger("peerpitch.worker")
T = TypeVar("T")

DEFAULT_GRACE_S = 25.0
# How long a cancelled handler may take to unwind before the job is released anyway.
CANCEL_TIMEOUT_S = 5.0
LISTEN_KEEPALIVE_S = 30.0
LISTEN_RETRY_MAX_S = 30.0
CLAIM_RETRY_MAX_S = 30.0
# Rows per batched UPDATE (completions, heartbeats).
BATCH_MAX = 500
SWEEP_TASK = "jobs.recover_expired_leases"
# SQLAlchemy URL query options that asyncpg.connect does not understand.
_SA_ONLY_QUERY = ("prepared_statement_cache_size", "prepared_statement_name_func")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[-200:]


def asyncpg_dsn(url: URL) -> str:
    return (
        url.set(drivername="postgresql")
        .difference_update_query(_SA_ONLY_QUERY)
        .render_as_string(hide_password=False)
    )


# What a recorded failure means for the job (None: not recorded, see ``Outcome``).
_FAIL_OUTCOMES: dict[JobStatus | None, Outcome] = {
    JobStatus.queued: "retrying",
    JobStatus.failed: "failed",
    JobStatus.dead: "dead",
    None: "lease-lost",
}


@dataclass(eq=False)
class _Running:
    job: ClaimedJob
    handler_task: asyncio.Task[None]
    lease_deadline: float  # monotonic; when the lease runs out unless extended
    supervisor: asyncio.Task[None] | None = None
    lease_lost: bool = False
    shutdown: bool = False  # cancelled by the worker's shutdown, not by its own fault
    released: bool = False  # handed back by the drain while its handler ignored cancellation
    started: float = field(default_factory=time.monotonic)


class Worker:
    """One worker: up to ``concurrency`` jobs at a time, in this event loop."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        services: JobServices,
        registry: Registry | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        listen: bool = True,
        local_wakeups: bool = True,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.services = services
        self.registry = registry if registry is not None else default_registry
        self.registry.check()  # a required kind without a handler: refuse to start
        self.concurrency = max(1, concurrency or settings.worker_concurrency)
        self.worker_id = worker_id or default_worker_id()
        self.grace_s = grace_s
        self.cancel_timeout_s = CANCEL_TIMEOUT_S
        self.listen = listen and engine.dialect.name == "postgresql"
        self.local_wakeups = local_wakeups
        self.lease_s = float(settings.job_lease_s)
        # A heartbeat must land well before the lease runs out.
        self.heartbeat_s = min(float(settings.job_heartbeat_s), self.lease_s / 3)
        self._wake = asyncio.Event()
        self._force = asyncio.Event()
        self._running: set[_Running] = set()
        self._to_complete: list[tuple[ClaimedJob, asyncio.Future[bool]]] = []
        self._complete_kick = asyncio.Event()
        self.listening = asyncio.Event()  # set while LISTEN is active (tests, bench)
        self.events = WorkerEvents()  # claimed, idle, finished, draining (tests, bench)

    @property
    def running_jobs(self) -> int:
        return len(self._running)

    def force_stop(self) -> None:
        """End the shutdown grace period now (a second SIGTERM/SIGINT)."""
        self._force.set()

    def _context(self) -> TaskContext:
        return TaskContext(
            settings=self.settings,
            engine=self.engine,
            sessionmaker=self.sessionmaker,
            services=self.services,
            worker_id=self.worker_id,
        )

    # --- main loop ---------------------------------------------------------------------

    async def run(self, stop_event: asyncio.Event) -> None:
        """Work until ``stop_event`` is set, then drain: running jobs get ``grace_s`` to
        finish, the rest are cancelled and released back to the queue."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        if self.local_wakeups:
            add_local_waker(wake)
        # Needed until the last running job is recorded, so stopped after the drain.
        core = [
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            asyncio.create_task(self._completer(), name="worker-completer"),
        ]
        aux = [asyncio.create_task(self._stop_watch(stop_event), name="worker-stop-watch")]
        aux += [
            asyncio.create_task(self._periodic(task), name=f"periodic:{task.name}")
            for task in self._periodic_tasks()
        ]
        if self.listen:
            aux.append(asyncio.create_task(self._listen(), name="worker-listen"))
        if not self.registry.kinds:
            log.warning("worker %s has no job handlers registered", self.worker_id)
        log.info(
            "worker %s started: concurrency=%d kinds=%s",
            self.worker_id,
            self.concurrency,
            ",".join(sorted(self.registry.kinds)) or "-",
        )
        grace = self.grace_s
        try:
            await self._claim_loop(stop_event)
        except asyncio.CancelledError:
            grace = 0.0  # cancelled from outside: release at once, then propagate
            raise
        finally:
            self.events.emit(Draining, len(self._running))
            remove_local_waker(wake)
            for task in aux:
                task.cancel()
            await asyncio.gather(*aux, return_exceptions=True)
            await self._drain(grace)
            for task in core:
                task.cancel()
            await asyncio.gather(*core, return_exceptions=True)
            log.info("worker %s stopped", self.worker_id)

    async def _stop_watch(self, stop_event: asyncio.Event) -> None:
        await stop_event.wait()
        self._wake.set()

    async def _claim_loop(self, stop_event: asyncio.Event) -> None:
        kinds = self.registry.kinds
        poll_s = self.settings.job_poll_interval_s
        failures = 0
        while not stop_event.is_set():
            # Cleared before claiming: a wake-up arriving during the claim is kept.
            self._wake.clear()
            free = self.concurrency - len(self._running)
            timeout = poll_s
            idle = not kinds
            if free > 0 and kinds:
                try:
                    jobs = await claim(
                        self.engine, self.worker_id, kinds=kinds, limit=free, lease_s=self.lease_s
                    )
                    failures = 0
                    idle = not jobs
                except Exception:
                    failures += 1
                    timeout = min(poll_s * 2**failures, CLAIM_RETRY_MAX_S)
                    log.exception("claiming jobs failed; retrying in %.1f s", timeout)
                    jobs = []
                for job in jobs:
                    self._start(job)
            if stop_event.is_set():
                break
            if idle and not self._wake.is_set():
                self.events.emit(Idle, len(self._running))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    # --- one job -------------------------------------------------------------------------

    def _start(self, job: ClaimedJob) -> None:
        handler = self.registry.handler(job.kind)
        assert handler is not None  # only registered kinds are claimed
        base = self._context()
        ctx = JobContext(
            settings=base.settings,
            engine=base.engine,
            sessionmaker=base.sessionmaker,
            services=base.services,
            worker_id=base.worker_id,
            job_id=job.id,
            kind=job.kind,
            payload=job.payload,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
        )
        running = _Running(
            job=job,
            handler_task=asyncio.create_task(handler(ctx), name=f"job:{job.kind}:{job.id}"),
            lease_deadline=time.monotonic() + self.lease_s,
        )
        ctx.report_progress = lambda fraction: self._report(running, fraction)
        running.supervisor = asyncio.create_task(self._supervise(running))
        self._running.add(running)

        def done(_: asyncio.Task[None]) -> None:
            self._running.discard(running)
            self._wake.set()  # a slot is free

        running.supervisor.add_done_callback(done)
        self.events.emit(Claimed, job.id, job.kind, job.attempts)

    def _log(
        self, level: int, job: ClaimedJob, msg: str, *args: object, exc_info: bool = False
    ) -> None:
        log.log(
            level,
            "job %s %s: " + msg,
            job.kind,
            job.id,
            *args,
            exc_info=exc_info,
            extra={"job_id": str(job.id), "job_kind": job.kind},
        )

    async def _supervise(self, running: _Running) -> None:
        job = running.job
        self._log(logging.INFO, job, "started (attempt %d/%d)", job.attempts, job.max_attempts)
        error: BaseException | None = None
        try:
            await running.handler_task
        except (Exception, asyncio.CancelledError) as exc:
            error = exc
        elapsed = time.monotonic() - running.started
        db, jid, wid, attempt = self.engine, job.id, job.worker_id, job.attempts

        outcome: Outcome = "lease-lost"
        if running.lease_lost or isinstance(error, LeaseLost):
            self._log(logging.WARNING, job, "abandoned: lease lost to another worker")
            if running.released:
                outcome = "released"
        elif isinstance(error, asyncio.CancelledError) and running.shutdown:
            # Not the job's fault: the attempt is not counted.
            if await self._record(job, lambda: release(db, jid, wid, attempt=attempt)):
                self._log(logging.INFO, job, "released back to the queue after %.1f s", elapsed)
                outcome = "released"
        elif isinstance(error, PermanentJobError):
            message = str(error)
            status = await self._record(
                job, lambda: fail(db, jid, wid, message, permanent=True, attempt=attempt)
            )
            self._log(logging.WARNING, job, "failed permanently: %s", message)
            outcome = _FAIL_OUTCOMES[status]
        elif error is not None:
            # Includes a handler that cancelled itself: counted, so it cannot loop forever.
            text = "".join(traceback.format_exception(error))
            status = await self._record(job, lambda: fail(db, jid, wid, text, attempt=attempt))
            recorded = status.value if status else "not recorded: lease lost"
            self._log(logging.WARNING, job, "attempt %d failed (%s): %r", attempt, recorded, error)
            outcome = _FAIL_OUTCOMES[status]
        elif await self._record(job, lambda: self._complete(job)):
            self._log(logging.INFO, job, "succeeded in %.3f s", elapsed)
            outcome = "succeeded"
        else:
            self._log(logging.WARNING, job, "finished, but its lease was lost: it may run again")
        self.events.emit(Finished, job.id, job.kind, job.attempts, outcome)

    async def _record(self, job: ClaimedJob, op: Callable[[], Awaitable[T]]) -> T | None:
        """Write an outcome, retrying briefly through a database blip; if it still fails,
        the lease expires and the job runs again (handlers are idempotent)."""
        for attempt in range(4):
            try:
                return await op()
            except Exception:
                if attempt == 3:
                    self._log(logging.ERROR, job, "recording the outcome failed", exc_info=True)
                    return None
                await asyncio.sleep(0.5 * 2**attempt)
        return None

    async def _complete(self, job: ClaimedJob) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._to_complete.append((job, future))
        self._complete_kick.set()
        return await future

    async def _completer(self) -> None:
        """Records successes in batches: while one UPDATE is in flight the next batch
        gathers, so a busy worker spends one transaction on many jobs."""
        while True:
            await self._complete_kick.wait()
            self._complete_kick.clear()
            while self._to_complete:
                batch = self._to_complete[:BATCH_MAX]
                del self._to_complete[:BATCH_MAX]
                claims = [(job.id, job.attempts) for job, _ in batch]
                try:
                    done = await complete_many(self.engine, self.worker_id, claims)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for job, future in batch:
                    if not future.done():
                        future.set_result((job.id, job.attempts) in done)

    async def _heartbeat_loop(self) -> None:
        """Extends the leases of all running jobs in one UPDATE per beat; a beat comes at
        most ``heartbeat_s`` after a claim, well within the lease."""
        while True:
            await asyncio.sleep(self.heartbeat_s)
            active = [r for r in self._running if not r.handler_task.done() and not r.lease_lost]
            for start in range(0, len(active), BATCH_MAX):
                await self._beat(active[start : start + BATCH_MAX])

    async def _beat(self, active: list[_Running]) -> None:
        sent = time.monotonic()
        try:
            owned = await heartbeat_many(
                self.engine,
                self.worker_id,
                [(r.job.id, r.job.attempts) for r in active],
                lease_s=self.lease_s,
            )
        except Exception:
            log.warning("heartbeat failed", exc_info=True)
            # Unreachable database: once a lease has surely run out, stop that work.
            for running in active:
                if time.monotonic() >= running.lease_deadline and not running.handler_task.done():
                    self._lose_lease(running)
            return
        for running in active:
            if (running.job.id, running.job.attempts) in owned:
                running.lease_deadline = sent + self.lease_s
            elif not running.handler_task.done():  # else it just finished and was recorded
                self._lose_lease(running)

    async def _report(self, running: _Running, fraction: float | None) -> bool:
        job = running.job
        sent = time.monotonic()
        try:
            owned = await heartbeat(
                self.engine,
                job.id,
                job.worker_id,
                lease_s=self.lease_s,
                progress=fraction,
                attempt=job.attempts,
            )
        except Exception:
            # Progress is advisory; the heartbeat loop decides about the lease.
            self._log(logging.WARNING, job, "progress update failed", exc_info=True)
            return True
        if owned:
            running.lease_deadline = sent + self.lease_s
        else:
            running.lease_lost = True
        return owned

    def _lose_lease(self, running: _Running) -> None:
        self._log(logging.WARNING, running.job, "lease lost; cancelling the handler")
        running.lease_lost = True
        running.handler_task.cancel()

    # --- shutdown ------------------------------------------------------------------------

    async def _drain(self, grace_s: float) -> None:
        if not self._running:
            return
        log.info("waiting up to %g s for %d running job(s) to finish", grace_s, len(self._running))
        deadline = time.monotonic() + grace_s
        force = asyncio.create_task(self._force.wait())
        try:
            while self._running and not self._force.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                supervisors = {r.supervisor for r in self._running if r.supervisor}
                await asyncio.wait(
                    {*supervisors, force}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            force.cancel()
        if not self._running:
            return
        left = list(self._running)
        log.warning("cancelling %d job(s) still running; they go back to the queue", len(left))
        for running in left:
            running.shutdown = True
            running.handler_task.cancel()
        supervisors = {r.supervisor for r in left if r.supervisor}
        _, stuck = await asyncio.wait(supervisors, timeout=self.cancel_timeout_s)
        for running in left:
            if running.supervisor in stuck:
                # The handler ignores cancellation: hand the job back regardless, and make
                # its supervisor record nothing should the handler ever finish.
                running.lease_lost = True
                running.released = True
                await self._release_now(running.job)
        if stuck:
            log.error("%d handler(s) ignored cancellation; their jobs were released", len(stuck))

    async def _release_now(self, job: ClaimedJob) -> None:
        await self._record(
            job, lambda: release(self.engine, job.id, job.worker_id, attempt=job.attempts)
        )

    # --- wake-ups and periodic tasks -----------------------------------------------------

    def _on_notify(self, _conn: object, _pid: int, _channel: str, kind: str) -> None:
        if kind in self.registry.kinds:
            self._wake.set()

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection (pooled ones are reset and shared); reconnect
        with backoff if it drops, while polling carries on."""
        import asyncpg  # type: ignore[import-untyped]

        delay = 1.0
        dsn = asyncpg_dsn(self.engine.url)
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(dsn)
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.listening.set()
                self._wake.set()  # notifications may have been missed while disconnected
                delay = 1.0
                while True:
                    await asyncio.sleep(LISTEN_KEEPALIVE_S)
                    # Without traffic a dead TCP connection is never noticed.
                    await conn.fetchval("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection failed (%r); retrying in %g s", exc, delay)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_MAX_S)

    def _periodic_tasks(self) -> list[PeriodicTask]:
        sweep = PeriodicTask(SWEEP_TASK, self.settings.sweep_interval_s, self._sweep)
        return [sweep, *self.registry.periodic_tasks]

    async def _sweep(self, _ctx: TaskContext) -> None:
        await recover_expired_leases(self.engine)

    async def _periodic(self, task: PeriodicTask) -> None:
        # Spread the first run so that workers started together do not run in lockstep.
        await asyncio.sleep(random.uniform(0, min(task.interval_s, 5.0)))
        while True:
            started = time.monotonic()
            try:
                await task.fn(self._context())
            except Exception:
                log.exception("periodic task %s failed", task.name)
            await asyncio.sleep(max(0.0, task.interval_s - (time.monotonic() - started)))
