"""Job queue benchmark on PostgreSQL: claim-and-complete throughput and wake-up latency.

    python bench/queue.py [postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

(or PEERPITCH_BENCH_DATABASE_URL). Creates a scratch database next to the given one,
migrates it, runs, and drops it. Prints figures and their ratio to the goals:

- throughput: 10,000 no-op jobs drained by 4 worker processes (the real ``Worker``);
  goal >= 1,000 jobs/s.
- latency: enqueue commit -> handler start on an idle worker woken by LISTEN/NOTIFY
  (its poll interval is 30 s, so only the notification can wake it); goal p50 < 50 ms.
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys
from pathlib import Path

# This file is named like the stdlib `queue` module: keep its folder off the import path
# (concurrent.futures imports `queue`), and put the project root on it instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import asyncio
import multiprocessing as mp
import statistics
import time
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import func, insert, select, text, update

from app.config import Settings
from app.db import make_engine, make_sessionmaker, utcnow, uuid7
from app.jobs.kinds import JobKind
from app.jobs.models import Job, JobStatus
from app.jobs.registry import JobContext, JobServices, Registry
from app.jobs.service import NOTIFY_CHANNEL, enqueue
from app.migrate import create_scratch_database, drop_scratch_database, upgrade_head
from app.storage.base import Storage
from workers.runtime import Worker

BENCH_NOOP = JobKind("bench.noop")
BENCH_PING = JobKind("bench.ping")
NO_SERVICES = JobServices(storage=cast(Storage, None))  # the bench handlers use none

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
N_JOBS = 10_000
N_WORKERS = 4
CONCURRENCY = 32  # per worker process: also the largest claim batch
LATENCY_SAMPLES = 200
GOAL_JOBS_PER_S = 1000.0
GOAL_P50_MS = 50.0

FORK = mp.get_context("fork")  # children inherit imports; no event loop exists yet


# --- scratch database -------------------------------------------------------------------


def _settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "secret_key": "bench",
        "embedded_worker": False,
        "sweep_interval_s": 3600,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


# --- worker processes -------------------------------------------------------------------


def _worker_process(
    url: str,
    concurrency: int,
    poll_s: float,
    ready: Any,
    stop: Any,
    started: Any | None,
) -> None:
    asyncio.run(_run_worker(url, concurrency, poll_s, ready, stop, started))


async def _run_worker(
    url: str, concurrency: int, poll_s: float, ready: Any, stop: Any, started: Any | None
) -> None:
    registry = Registry()

    @registry.register(BENCH_NOOP)
    async def noop(ctx: JobContext) -> None:
        return None

    @registry.register(BENCH_PING)
    async def ping(ctx: JobContext) -> None:
        if started is not None:
            started.put((ctx.payload["seq"], time.monotonic()))

    engine = make_engine(url, pool_size=4, max_overflow=4)
    worker = Worker(
        _settings(url, job_poll_interval_s=poll_s),
        engine,
        make_sessionmaker(engine),
        NO_SERVICES,
        registry,
        concurrency,
        local_wakeups=False,
    )
    stop_event = asyncio.Event()
    task = asyncio.create_task(worker.run(stop_event))
    await asyncio.wait_for(worker.listening.wait(), 10)
    await asyncio.sleep(0.2)  # past the first (empty) claim
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.02)
    stop_event.set()
    await task
    await engine.dispose()


def _spawn(url: str, n: int, concurrency: int, poll_s: float, started: Any = None) -> tuple:
    stop = FORK.Event()
    readies = [FORK.Event() for _ in range(n)]
    procs = [
        FORK.Process(target=_worker_process, args=(url, concurrency, poll_s, ready, stop, started))
        for ready in readies
    ]
    for proc in procs:
        proc.start()
    for ready in readies:
        if not ready.wait(30):
            raise RuntimeError("a worker process did not start")
    return procs, stop


def _join(procs: list[Any], stop: Any) -> None:
    stop.set()
    for proc in procs:
        proc.join(60)
        if proc.exitcode != 0:
            raise RuntimeError(f"worker process exited with {proc.exitcode}")


# --- throughput -------------------------------------------------------------------------


async def _insert_parked_jobs(url: str, n: int) -> None:
    """Jobs due far in the future, so that workers start idle; released all at once."""
    engine = make_engine(url)
    later = utcnow() + timedelta(days=1)
    rows = [
        {
            "id": uuid7(),
            "kind": BENCH_NOOP.name,
            "payload": {"i": i},
            "status": JobStatus.queued,
            "priority": 100,
            "run_at": later,
            "attempts": 0,
            "max_attempts": 5,
            "progress": 0.0,
            "created_at": later,
            "updated_at": later,
        }
        for i in range(n)
    ]
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE jobs"))
        await conn.execute(insert(Job), rows)
        await conn.execute(text("ANALYZE jobs"))
    await engine.dispose()


async def _release_and_wait(url: str, n: int) -> tuple[float, int]:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(update(Job).values(run_at=utcnow() - timedelta(milliseconds=1)))
        await conn.execute(text("SELECT pg_notify(:c, 'bench.noop')"), {"c": NOTIFY_CHANNEL})
    released = utcnow()
    done_query = select(func.count()).where(Job.status == JobStatus.succeeded)
    deadline = time.monotonic() + 300
    async with engine.connect() as conn:
        while (await conn.scalar(done_query)) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("the queue did not drain within 300 s")
            await asyncio.sleep(0.05)
        last = await conn.scalar(select(func.max(Job.finished_at)))
        repeated = await conn.scalar(select(func.count()).where(Job.attempts != 1))
    await engine.dispose()
    assert last is not None
    return (last - released).total_seconds(), int(repeated or 0)


def throughput(url: str) -> float:
    asyncio.run(_insert_parked_jobs(url, N_JOBS))
    procs, stop = _spawn(url, N_WORKERS, CONCURRENCY, poll_s=0.1)
    try:
        elapsed, repeated = asyncio.run(_release_and_wait(url, N_JOBS))
    finally:
        _join(procs, stop)
    rate = N_JOBS / elapsed
    print(
        f"throughput: {N_JOBS} no-op jobs, {N_WORKERS} worker processes x {CONCURRENCY} slots: "
        f"{elapsed:.2f} s = {rate:,.0f} jobs/s "
        f"(goal >= {GOAL_JOBS_PER_S:,.0f}: ratio {rate / GOAL_JOBS_PER_S:.2f}x)"
    )
    if repeated:
        print(f"  WARNING: {repeated} job(s) ran more than once")
    return rate


# --- latency ----------------------------------------------------------------------------


async def _measure_latency(url: str, started: Any) -> list[float]:
    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE jobs"))
    for seq in range(LATENCY_SAMPLES):
        async with sm() as session:
            await enqueue(session, BENCH_PING, {"seq": seq})
            t0 = time.monotonic()  # before COMMIT: its round trip is counted too
            await session.commit()
        got_seq, t_start = await loop.run_in_executor(None, started.get, True, 10)
        assert got_seq == seq
        samples.append((t_start - t0) * 1000)
        await asyncio.sleep(0.01)  # let the worker go idle again
    await engine.dispose()
    return samples


def latency(url: str) -> float:
    started = FORK.Queue()
    procs, stop = _spawn(url, 1, 4, poll_s=30.0, started=started)
    try:
        samples = asyncio.run(_measure_latency(url, started))
    finally:
        _join(procs, stop)
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(
        f"latency (enqueue commit -> handler start, idle worker, LISTEN/NOTIFY, "
        f"{len(samples)} samples): p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {samples[-1]:.1f} ms "
        f"(goal p50 < {GOAL_P50_MS:.0f} ms: ratio {GOAL_P50_MS / p50:.1f}x headroom)"
    )
    return p50


def main() -> int:
    base = (sys.argv[1:] or [os.environ.get("PEERPITCH_BENCH_DATABASE_URL", DEFAULT_URL)])[0]
    if not base.startswith("postgresql"):
        print("the queue benchmark needs PostgreSQL", file=sys.stderr)
        return 2
    name = f"pp_bench_{os.getpid()}"
    url = asyncio.run(create_scratch_database(base, name))
    try:
        upgrade_head(url, quiet=True)
        rate = throughput(url)
        p50 = latency(url)
    finally:
        asyncio.run(drop_scratch_database(base, name))
    ok = rate >= GOAL_JOBS_PER_S and p50 < GOAL_P50_MS
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
