"""The job queue's operations: enqueue in the caller's transaction; claim, heartbeat and
finish in short transactions of their own.

Every change to a claimed job is guarded by ownership: the row must still be ``running``
under this ``worker_id`` (and, when given, the same ``attempt``, which identifies one claim
even when a worker re-claims its own expired job). A worker that lost its lease therefore
cannot overwrite the outcome of the worker that took the job over.

Times come from the Python clock (UTC), not the database's, so the same code runs on
SQLite and PostgreSQL; hosts are expected to keep their clocks in sync (NTP), which is far
tighter than a lease.
"""

from __future__ import annotations

import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Select,
    Table,
    and_,
    case,
    event,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import NamedFromClause

from app.db import utcnow, uuid7
from app.jobs.kinds import JobKind
from app.jobs.models import UNFINISHED, UNFINISHED_SQL, Job, JobStatus

log = logging.getLogger("peerpitch.jobs")

NOTIFY_CHANNEL = "peerpitch_jobs"
LEASE_EXPIRED = "lease expired"
MAX_ERROR_CHARS = 8000

RETRY_BASE_S = 15.0
RETRY_FACTOR = 4.0
RETRY_CAP_S = 3600.0
RETRY_JITTER = 0.2

JOBS = cast(Table, Job.__table__)

# Where claims and finishes run: an engine, or a sessionmaker bound to one.
DB = AsyncEngine | async_sessionmaker[AsyncSession]


class PermanentJobError(Exception):
    """Raised by a handler for an error that retrying cannot fix (e.g. invalid media):
    the job fails at once instead of being retried."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and another claim took it,
    or it was finished elsewhere); the handler must stop without recording an outcome."""


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    worker_id: str
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class SweepResult:
    requeued: int
    dead: int


def retry_delay_s(
    attempts: int,
    rand: float,
    *,
    base_s: float = RETRY_BASE_S,
    factor: float = RETRY_FACTOR,
    cap_s: float = RETRY_CAP_S,
    jitter: float = RETRY_JITTER,
) -> float:
    """Seconds to wait before the next attempt after ``attempts`` failed ones.

    ``base_s * factor**(attempts - 1)`` capped at ``cap_s``, then spread by ±``jitter`` using
    ``rand`` in [0, 1) so that jobs failing together do not retry in lockstep.
    """
    exponent = max(attempts, 1) - 1
    delay = base_s
    for _ in range(exponent):  # stepwise, so huge attempt counts cannot overflow
        if delay >= cap_s:
            break
        delay *= factor
    delay = min(delay, cap_s)
    return delay * (1.0 + jitter * (2.0 * rand - 1.0))


# --- in-process wake-ups -------------------------------------------------------------

_local_wakers: set[Callable[[], None]] = set()
_PENDING_WAKE = "peerpitch_jobs_wake"


def add_local_waker(callback: Callable[[], None]) -> None:
    """Register a callback that ``notify_local`` calls (a worker's wake-up). It must be
    safe to call from any thread (e.g. ``loop.call_soon_threadsafe``)."""
    _local_wakers.add(callback)


def remove_local_waker(callback: Callable[[], None]) -> None:
    _local_wakers.discard(callback)


def notify_local() -> None:
    """Wake the workers of this process now (SQLite has no NOTIFY; on PostgreSQL this
    merely arrives before the notification). ``enqueue`` calls it after commit."""
    for callback in list(_local_wakers):
        # RuntimeError: its event loop is closed; that worker unregisters itself.
        with contextlib.suppress(RuntimeError):
            callback()


def _after_commit(session: Session) -> None:
    if session.info.pop(_PENDING_WAKE, False):
        notify_local()


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_WAKE, None)


def _wake_after_commit(session: AsyncSession) -> None:
    sync = session.sync_session
    if not event.contains(sync, "after_commit", _after_commit):
        event.listen(sync, "after_commit", _after_commit)
        event.listen(sync, "after_rollback", _after_rollback)
    sync.info[_PENDING_WAKE] = True


# --- enqueue ---------------------------------------------------------------------------


def _insert_job(dialect: str, values: dict[str, Any], *, dedupe: bool) -> Insert:
    if dialect == "postgresql":
        pg_stmt = pg_insert(Job).values(values)
        if dedupe:
            pg_stmt = pg_stmt.on_conflict_do_nothing(
                index_elements=[Job.dedupe_key], index_where=text(UNFINISHED_SQL)
            )
        return pg_stmt
    lite_stmt = sqlite_insert(Job).values(values)
    if dedupe:
        lite_stmt = lite_stmt.on_conflict_do_nothing(
            index_elements=[Job.dedupe_key], index_where=text(UNFINISHED_SQL)
        )
    return lite_stmt


async def enqueue(
    session: AsyncSession,
    kind: JobKind | str,
    payload: dict[str, Any],
    *,
    priority: int = 100,
    run_at: datetime | None = None,
    max_attempts: int = 5,
    dedupe_key: str | None = None,
) -> Job:
    """Add a job to the caller's transaction (never commits): it runs only if that
    transaction commits. With a ``dedupe_key`` that an unfinished job already holds,
    returns that job instead of adding another. An undeclared kind raises
    ``UnknownJobKind`` at once."""
    kind = JobKind.of(kind).name
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"the job queue does not support the {dialect} dialect")
    now = utcnow()
    values = {
        "id": uuid7(),
        "kind": kind,
        "payload": payload,
        "status": JobStatus.queued,
        "priority": priority,
        "run_at": run_at or now,
        "attempts": 0,
        "max_attempts": max_attempts,
        "progress": 0.0,
        "dedupe_key": dedupe_key,
        "created_at": now,
        "updated_at": now,
    }
    # A conflict on the partial unique index answers "already enqueued" without an
    # IntegrityError aborting the caller's transaction; a concurrent uncommitted insert
    # of the same key makes this wait for it, then either insert or see its row.
    for _ in range(3):
        stmt = _insert_job(dialect, values, dedupe=dedupe_key is not None)
        job = (await session.scalars(stmt.returning(Job))).first()
        if job is not None:
            if dialect == "postgresql":
                # Delivered at commit, never for a rolled-back transaction.
                await session.execute(
                    text("SELECT pg_notify(:channel, :kind)"),
                    {"channel": NOTIFY_CHANNEL, "kind": kind},
                )
            _wake_after_commit(session)
            return job
        existing = await session.scalar(
            select(Job).where(Job.dedupe_key == dedupe_key, Job.status.in_(UNFINISHED))
        )
        if existing is not None:
            return existing
        # The holder finished between the two statements: the key is free again.
    raise RuntimeError(f"could not enqueue {kind!r} with dedupe key {dedupe_key!r}")


# --- worker-side operations ----------------------------------------------------------


def _engine(db: DB) -> AsyncEngine:
    if isinstance(db, AsyncEngine):
        return db
    bind = db.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        raise TypeError("the sessionmaker is not bound to an AsyncEngine")
    return bind


@asynccontextmanager
async def _write_tx(db: DB) -> AsyncIterator[AsyncConnection]:
    # On SQLite this is BEGIN IMMEDIATE (app.db's default): the write lock is taken up front.
    async with _engine(db).connect() as conn, conn.begin():
        yield conn


def _claims_of(worker_id: str, pairs: list[tuple[uuid.UUID, int]]) -> ColumnElement[bool]:
    """Rows still running under these (job id, attempt) claims of ``worker_id``."""
    return and_(
        JOBS.c.worker_id == worker_id,
        JOBS.c.status == JobStatus.running,
        tuple_(JOBS.c.id, JOBS.c.attempts).in_(pairs),
    )


def _succeeded(now: datetime) -> dict[str, Any]:
    return {
        "status": JobStatus.succeeded,
        "progress": 1.0,
        "lease_expires_at": None,
        "finished_at": now,
        "updated_at": now,
    }


def _owned(job_id: uuid.UUID, worker_id: str, attempt: int | None) -> ColumnElement[bool]:
    clauses = [
        JOBS.c.id == job_id,
        JOBS.c.worker_id == worker_id,
        JOBS.c.status == JobStatus.running,
    ]
    if attempt is not None:
        clauses.append(JOBS.c.attempts == attempt)
    return and_(*clauses)


def _clamp(fraction: float) -> float:
    return min(max(fraction, 0.0), 1.0)


async def _bury_exhausted(conn: AsyncConnection, now: datetime) -> int:
    """Expired leases with no attempt left: the worker died on the last attempt."""
    cand = JOBS.alias("cand")
    sub = select(cand.c.id).where(
        cand.c.status == JobStatus.running,
        cand.c.lease_expires_at < now,
        cand.c.attempts >= cand.c.max_attempts,
    )
    if conn.dialect.name == "postgresql":
        sub = sub.with_for_update(skip_locked=True)
    result = await conn.execute(
        update(JOBS)
        .where(JOBS.c.id.in_(sub))
        .values(
            status=JobStatus.dead,
            last_error=LEASE_EXPIRED,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
    )
    if result.rowcount:
        log.warning("%d job(s) dead: lease expired on their last attempt", result.rowcount)
    return result.rowcount


def _candidates(
    cand: NamedFromClause,
    where: list[ColumnElement[bool]],
    kinds: list[str] | None,
    limit: int,
    *,
    lock: bool,
) -> Select[tuple[uuid.UUID, int, datetime]]:
    query = select(cand.c.id, cand.c.priority, cand.c.run_at).where(*where)
    if kinds is not None:
        query = query.where(cand.c.kind.in_(kinds))
    query = query.order_by(cand.c.priority, cand.c.run_at).limit(limit)
    if lock:
        # Concurrent claimers skip each other's rows instead of waiting or colliding;
        # SQLite needs no lock clause: BEGIN IMMEDIATE serializes writers.
        query = query.with_for_update(skip_locked=True)
    inner = query.subquery()
    return select(inner.c.id, inner.c.priority, inner.c.run_at)


async def claim(
    db: DB,
    worker_id: str,
    *,
    kinds: Iterable[str] | None,
    limit: int,
    lease_s: float,
    now: datetime | None = None,
) -> list[ClaimedJob]:
    """Claim up to ``limit`` due jobs (of ``kinds``, or any kind when None) for
    ``worker_id``, counting the attempt now and holding a lease of ``lease_s`` seconds.

    Due means queued with ``run_at`` passed, or running under an expired lease (its worker
    died or stalled). Lower ``priority`` first, then older ``run_at``.
    """
    kind_list = None if kinds is None else sorted(set(kinds))
    if limit <= 0 or kind_list == []:
        return []
    now = now or utcnow()
    lease_expires_at = now + timedelta(seconds=lease_s)
    queued, expired = JOBS.alias("queued"), JOBS.alias("expired")
    async with _write_tx(db) as conn:
        pg = conn.dialect.name == "postgresql"
        # Each branch is its own ordered, limited scan of ix_jobs_claim, so a claim stops
        # after ``limit`` rows whatever the backlog (one OR of both would scan and sort
        # every due row on each claim).
        due = union_all(
            _candidates(
                queued,
                [queued.c.status == JobStatus.queued, queued.c.run_at <= now],
                kind_list,
                limit,
                lock=pg,
            ),
            _candidates(
                expired,
                [expired.c.status == JobStatus.running, expired.c.lease_expires_at < now],
                kind_list,
                limit,
                lock=pg,
            ),
        ).subquery("due")
        pick = select(due.c.id).order_by(due.c.priority, due.c.run_at).limit(limit)
        # An expired lease on the last attempt: its worker died running it, so it is dead
        # rather than run again (decided in the same statement, on the row's old values).
        exhausted = and_(JOBS.c.status == JobStatus.running, JOBS.c.attempts >= JOBS.c.max_attempts)
        rows = (
            await conn.execute(
                update(JOBS)
                .where(JOBS.c.id.in_(pick))
                .values(
                    status=case((exhausted, JobStatus.dead), else_=JobStatus.running),
                    attempts=case((exhausted, JOBS.c.attempts), else_=JOBS.c.attempts + 1),
                    worker_id=case((exhausted, JOBS.c.worker_id), else_=worker_id),
                    lease_expires_at=case((exhausted, None), else_=lease_expires_at),
                    last_error=case((exhausted, LEASE_EXPIRED), else_=JOBS.c.last_error),
                    finished_at=case((exhausted, now), else_=JOBS.c.finished_at),
                    updated_at=now,
                )
                .returning(
                    JOBS.c.id,
                    JOBS.c.kind,
                    JOBS.c.payload,
                    JOBS.c.status,
                    JOBS.c.priority,
                    JOBS.c.run_at,
                    JOBS.c.attempts,
                    JOBS.c.max_attempts,
                )
            )
        ).all()
    dead = [row for row in rows if row.status == JobStatus.dead]
    if dead:
        log.warning("%d job(s) dead: lease expired on their last attempt", len(dead))
    claimed = [
        ClaimedJob(
            id=row.id,
            kind=row.kind,
            payload=row.payload,
            priority=row.priority,
            run_at=row.run_at,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            worker_id=worker_id,
            lease_expires_at=lease_expires_at,
        )
        for row in rows
        if row.status == JobStatus.running
    ]
    # RETURNING has no defined order.
    claimed.sort(key=lambda j: (j.priority, j.run_at, j.id))
    return claimed


async def heartbeat(
    db: DB,
    job_id: uuid.UUID,
    worker_id: str,
    *,
    lease_s: float,
    progress: float | None = None,
    attempt: int | None = None,
) -> bool:
    """Extend the lease (and record progress); False when this worker lost the job."""
    now = utcnow()
    values: dict[str, Any] = {
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "updated_at": now,
    }
    if progress is not None:
        values["progress"] = _clamp(progress)
    async with _write_tx(db) as conn:
        result = await conn.execute(
            update(JOBS).where(_owned(job_id, worker_id, attempt)).values(values)
        )
    return result.rowcount == 1


async def heartbeat_many(
    db: DB, worker_id: str, claims: Iterable[tuple[uuid.UUID, int]], *, lease_s: float
) -> set[tuple[uuid.UUID, int]]:
    """Extend the leases of many claims (job id, attempt) of one worker in one statement;
    returns the claims still owned (the others were lost)."""
    pairs = list(claims)
    if not pairs:
        return set()
    now = utcnow()
    async with _write_tx(db) as conn:
        rows = await conn.execute(
            update(JOBS)
            .where(_claims_of(worker_id, pairs))
            .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
            .returning(JOBS.c.id, JOBS.c.attempts)
        )
        return {(row.id, row.attempts) for row in rows}


async def set_progress(
    db: DB,
    job_id: uuid.UUID,
    worker_id: str,
    progress: float,
    *,
    attempt: int | None = None,
) -> bool:
    async with _write_tx(db) as conn:
        result = await conn.execute(
            update(JOBS)
            .where(_owned(job_id, worker_id, attempt))
            .values(progress=_clamp(progress), updated_at=utcnow())
        )
    return result.rowcount == 1


async def complete(
    db: DB, job_id: uuid.UUID, worker_id: str, *, attempt: int | None = None
) -> bool:
    now = utcnow()
    async with _write_tx(db) as conn:
        result = await conn.execute(
            update(JOBS).where(_owned(job_id, worker_id, attempt)).values(_succeeded(now))
        )
    return result.rowcount == 1


async def complete_many(
    db: DB, worker_id: str, claims: Iterable[tuple[uuid.UUID, int]]
) -> set[tuple[uuid.UUID, int]]:
    """Mark many claims (job id, attempt) of one worker succeeded in one statement (a busy
    worker's completions, batched); returns the claims recorded."""
    pairs = list(claims)
    if not pairs:
        return set()
    now = utcnow()
    async with _write_tx(db) as conn:
        rows = await conn.execute(
            update(JOBS)
            .where(_claims_of(worker_id, pairs))
            .values(_succeeded(now))
            .returning(JOBS.c.id, JOBS.c.attempts)
        )
        return {(row.id, row.attempts) for row in rows}


async def fail(
    db: DB,
    job_id: uuid.UUID,
    worker_id: str,
    error: str,
    *,
    permanent: bool = False,
    attempt: int | None = None,
    now: datetime | None = None,
) -> JobStatus | None:
    """Record a failed attempt: ``failed`` at once when ``permanent``, ``dead`` when no
    attempt is left, otherwise back to ``queued`` after a backoff. Returns the new
    status, or None when this worker no longer owns the job."""
    now = now or utcnow()
    owned = _owned(job_id, worker_id, attempt)
    async with _write_tx(db) as conn:
        query = select(JOBS.c.attempts, JOBS.c.max_attempts).where(owned)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            return None
        values: dict[str, Any] = {
            "last_error": error[-MAX_ERROR_CHARS:],
            "lease_expires_at": None,
            "updated_at": now,
        }
        if permanent or row.attempts >= row.max_attempts:
            status = JobStatus.failed if permanent else JobStatus.dead
            values.update(status=status, finished_at=now)
        else:
            status = JobStatus.queued
            delay = retry_delay_s(row.attempts, random.random())
            values.update(
                status=status,
                run_at=now + timedelta(seconds=delay),
                worker_id=None,
                progress=0.0,
            )
        await conn.execute(update(JOBS).where(owned).values(values))
    return status


async def release(db: DB, job_id: uuid.UUID, worker_id: str, *, attempt: int | None = None) -> bool:
    """Hand a running job back unfinished (graceful shutdown): queued again, due at once,
    and the interrupted attempt is not counted against it."""
    async with _write_tx(db) as conn:
        result = await conn.execute(
            update(JOBS)
            .where(_owned(job_id, worker_id, attempt))
            .values(
                status=JobStatus.queued,
                attempts=case((JOBS.c.attempts > 0, JOBS.c.attempts - 1), else_=0),
                worker_id=None,
                lease_expires_at=None,
                progress=0.0,
                updated_at=utcnow(),
            )
        )
    return result.rowcount == 1


async def recover_expired_leases(db: DB, *, now: datetime | None = None) -> SweepResult:
    """Requeue running jobs whose lease expired (their worker died), or mark them dead
    when that was their last attempt. Claims pick such jobs up anyway; this sweep keeps
    ``status`` truthful for whoever watches it (a clip's progress, an admin)."""
    now = now or utcnow()
    cand = JOBS.alias("cand")
    sub = select(cand.c.id).where(
        cand.c.status == JobStatus.running,
        cand.c.lease_expires_at < now,
        cand.c.attempts < cand.c.max_attempts,
    )
    async with _write_tx(db) as conn:
        if conn.dialect.name == "postgresql":
            sub = sub.with_for_update(skip_locked=True)
        dead = await _bury_exhausted(conn, now)
        result = await conn.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(sub))
            .values(
                status=JobStatus.queued,
                worker_id=None,
                lease_expires_at=None,
                progress=0.0,
                last_error=LEASE_EXPIRED,
                updated_at=now,
            )
        )
    if result.rowcount:
        log.warning("requeued %d job(s) whose lease expired", result.rowcount)
    return SweepResult(requeued=result.rowcount, dead=dead)
