"""Live events benchmark: (a) 500 open streams on one API process, (b) the outbox's cost on
a write; their figures side by side in one run.

(a) On PostgreSQL (a scratch database created and dropped here), one organization with 100
users and a shared clip. One API process (uvicorn, one worker, no embedded worker) serves
`GET /v1/events/stream` to 500 clients (5 per user; raw asyncio streams in this process, so
the clients cost little). This process then commits a sequence of `clip.ready` events (a
clip-sized payload, one transaction each, every --interval seconds) with
`app.events.service.record`, as another API process or a worker does: the API process hears
of them only through its LISTEN connection. Measured per event and stream: the time from
just before the commit to the frame's arrival (commit-to-delivery: p50, p99, max; every
stream must get every event), and the API process's memory per open stream (its RSS with
the 500 streams open minus its RSS before, / 500).

Goal: p99 commit-to-delivery <= 1 s with 500 streams.

(b) Feedback creation with vs. without the outbox row (bench/outbox.py, run from here):
goal >= 0.9 x the throughput.

    .venv/bin/python bench/events.py [--streams 500] [--users 100] [--events 40]
        [--interval 0.25] [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

# ruff: noqa: E402  (sys.path is fixed before the imports)
from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the stdlib `queue` for scripts run from this folder.
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(BENCH.parent))

import argparse
import asyncio
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench import harness

SCRIPT = str(Path(__file__).resolve())
P99_GOAL_S = 1.0
OPEN_BATCH = 50  # streams opened at a time (each open is one authenticated request)
_ID = re.compile(rb"(?:^|\n)id: (\d+)\n")


# --- the data set ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    org_id: uuid.UUID
    clip_id: uuid.UUID
    users: list[tuple[uuid.UUID, str]]  # (id, role)


async def seed(url: str, users: int) -> Seeded:
    """An organization, ``users`` reps (rows written directly: no password hashing) and an
    org-visible ready clip whose events every one of them may see."""
    from app.clips.models import Clip, ClipKind, ClipStatus, Visibility
    from app.db import make_engine, make_sessionmaker
    from app.orgs.service import create_org
    from app.users.models import Role, User

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            created = await create_org(
                session, name="Bench", admin_email="admin@bench.test",
                admin_password="bench-password", admin_name="Admin",
            )  # fmt: skip
            org_id = created.org.id
            people = [
                User(
                    org_id=org_id,
                    email=f"rep{n}@bench.test",
                    name=f"Rep {n}",
                    role=Role.rep,
                    password_hash="unused",
                )
                for n in range(users)
            ]
            session.add_all(people)
            await session.flush()
            clip = Clip(
                org_id=org_id, owner_id=people[0].id, title="Discovery call", kind=ClipKind.pitch,
                stage="closing", filename="p.mp4", content_type="video/mp4", size_bytes=1,
                status=ClipStatus.ready, visibility=Visibility.org, source_key="x",
            )  # fmt: skip
            session.add(clip)
            await session.flush()
            return Seeded(org_id, clip.id, [(u.id, "rep") for u in people])
    finally:
        await engine.dispose()


def clip_payload(clip_id: uuid.UUID, n: int) -> dict[str, Any]:
    """About the size of a real clip event's data (~1 KB)."""
    return {
        "id": str(clip_id), "n": n, "title": "Discovery call with Initech",
        "description": "Second call; pricing objection at the end. " * 4,
        "kind": "pitch", "stage": "closing", "skills": ["discovery_questions", "value_roi"],
        "visibility": "org", "status": "ready", "progress": 1.0, "duration_ms": 600_000,
        "width": 1280, "height": 720, "is_exemplar": False, "open_feedback_count": 3,
        "owner": {"id": str(uuid.uuid4()), "name": "Rep 0", "role": "rep"},
        "created_at": "2026-12-05T08:00:00Z", "updated_at": "2026-12-05T08:10:00Z",
        "poster_url": None, "error": None,
    }  # fmt: skip


# --- the stream clients -----------------------------------------------------------------------


@dataclass(eq=False)
class Client:
    """One raw SSE connection; notes when each event id arrives."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    arrivals: dict[int, float] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    async def read(self) -> None:
        buffer = b""
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            now = time.perf_counter()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                # Each frame is one chunk of the chunked body: its size line comes first.
                found = _ID.search(frame)
                if found:
                    self.arrivals[int(found.group(1))] = now


async def open_client(port: int, token: str) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if head[9:12] != b"200":
        raise RuntimeError(f"stream refused: {head[:200]!r}")
    client = Client(reader, writer)
    # The first frame (retry advice): the stream is registered with the hub.
    first = await reader.readuntil(b"\n\n")
    if b"retry:" not in first:
        raise RuntimeError(f"unexpected first frame {first!r}")
    client.task = asyncio.create_task(client.read())
    return client


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class StreamResult:
    streams: int
    events: int
    latencies: list[float]
    missing: int
    rss_before_kib: int
    rss_open_kib: int
    rss_after_events_kib: int

    def pct(self, q: float) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=1000)[int(q * 10) - 1]

    @property
    def kib_per_stream(self) -> float:
        return (self.rss_open_kib - self.rss_before_kib) / self.streams


async def drive_streams(
    url: str, port: int, pid: int, data: Seeded, streams: int, count: int, interval: float
) -> StreamResult:
    from app.db import make_engine, make_sessionmaker
    from app.events import service as events

    tokens = [harness.access_token(user_id, data.org_id, role) for user_id, role in data.users]
    # Warm the route and the hub up (code paths, the LISTEN connection), then measure.
    warm = await open_client(port, tokens[0])
    warm.writer.close()
    await asyncio.sleep(1.0)
    rss_before = rss_kib(pid)

    clients: list[Client] = []
    for start in range(0, streams, OPEN_BATCH):
        batch = range(start, min(start + OPEN_BATCH, streams))
        clients += await asyncio.gather(
            *(open_client(port, tokens[i % len(tokens)]) for i in batch)
        )
    await asyncio.sleep(1.0)
    rss_open = rss_kib(pid)

    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    committed: dict[uuid.UUID, float] = {}
    try:
        for n in range(count):
            async with sessionmaker() as session:
                row = await events.record(
                    session, org_id=data.org_id, type="clip.ready",
                    data=clip_payload(data.clip_id, n), clip_id=data.clip_id,
                )  # fmt: skip
                committed[row.id] = time.perf_counter()  # just before the commit
                await session.commit()
            await asyncio.sleep(interval)
        # The seqs the events got, to match the arrivals (ids in the frames are seqs).
        async with sessionmaker() as session:
            seqs = {
                row.id: int(row.seq or 0)
                for row in await events.events_after(session, data.org_id, 0, limit=count + 10)
            }
        deadline = time.perf_counter() + 10
        last = max(seqs.values())
        while time.perf_counter() < deadline and not all(last in c.arrivals for c in clients):
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()
    rss_after = rss_kib(pid)

    latencies: list[float] = []
    missing = 0
    for event_id, t0 in committed.items():
        seq = seqs[event_id]
        for client in clients:
            arrived = client.arrivals.get(seq)
            if arrived is None:
                missing += 1
            else:
                latencies.append(arrived - t0)
    for client in clients:
        client.writer.close()
        if client.task is not None:
            client.task.cancel()
    return StreamResult(streams, count, latencies, missing, rss_before, rss_open, rss_after)


# --- (b) the outbox's cost on a write ---------------------------------------------------------


@dataclass
class WriteCost:
    """POST …/feedback throughput with the outbox row vs. without (rps), A B B A rounds."""

    with_events_rps: float
    without_rps: float

    @property
    def ratio(self) -> float:
        return self.with_events_rps / self.without_rps


def write_cost(args: argparse.Namespace, url: str) -> WriteCost | None:
    """Feedback creation with vs. without the outbox: bench/outbox.py (two API processes,
    one with recording switched off, A B B A rounds on its own scratch database)."""
    if args.skip_write_cost:
        return None
    run = subprocess.run(
        [sys.executable, str(BENCH / "outbox.py"), "--database-url", args.database_url,
         "--seconds", str(args.write_seconds), "--rounds", "2", "--clients", "16"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    print(run.stdout, end="")
    rps = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"POST (with events|without)\s+(\d+)", run.stdout)
    }
    if len(rps) != 2:
        print(run.stderr[-2000:], file=sys.stderr)
        return None
    return WriteCost(rps["with events"], rps["without"])


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.25,
                        help="seconds between two events' commits")  # fmt: skip
    parser.add_argument("--write-seconds", type=float, default=10,
                        help="length of one round of the outbox-cost part")  # fmt: skip
    parser.add_argument("--skip-write-cost", action="store_true")
    harness.add_database_url(parser)
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, url, media = args.serve
        harness.serve(harness.build_app(int(port), url, media), int(port))
        return 0

    name = harness.scratch_name("pp_bench_events", keep=False)
    with harness.scratch_database(args.database_url, name) as url:
        data = asyncio.run(seed(url, args.users))
        port = harness.free_port()
        with tempfile.TemporaryDirectory(prefix="pp-bench-events-") as media:
            server = harness.start_server(SCRIPT, port, url, media)
            try:
                streams = asyncio.run(
                    drive_streams(
                        url, port, server.pid, data, args.streams, args.events, args.interval
                    )
                )
            finally:
                harness.stop_server(server)
        writes = write_cost(args, url)

    print(f"(a) {streams.streams} streams ({args.users} users) on one API process; "
          f"{streams.events} events, one every {args.interval:g} s, committed by another "
          f"process (LISTEN/NOTIFY); PostgreSQL")  # fmt: skip
    print(f"  {'commit-to-delivery':<24}{'p50':>10}{'p99':>10}{'max':>10}{'deliveries':>12}")
    print(f"  {'':<24}{streams.pct(50) * 1000:>8.1f}ms{streams.pct(99) * 1000:>8.1f}ms"
          f"{max(streams.latencies, default=float('nan')) * 1000:>8.1f}ms"
          f"{len(streams.latencies):>12}")  # fmt: skip
    print(f"  missing deliveries: {streams.missing}")
    print(f"  API process RSS: {streams.rss_before_kib / 1024:.1f} MiB before, "
          f"{streams.rss_open_kib / 1024:.1f} MiB with the streams open, "
          f"{streams.rss_after_events_kib / 1024:.1f} MiB after the events; "
          f"{streams.kib_per_stream:.1f} KiB per stream")  # fmt: skip
    ok = streams.missing == 0 and streams.pct(99) <= P99_GOAL_S
    print(f"  p99 {streams.pct(99) * 1000:.0f} ms (goal <= {P99_GOAL_S * 1000:.0f} ms), every "
          f"stream got every event: {'met' if ok else 'MISSED'}")  # fmt: skip

    if writes is None:
        print("(b) feedback creation with vs. without the outbox row: not run here "
              "(bench/outbox.py)")  # fmt: skip
    else:
        print(f"(b) POST feedback: {writes.with_events_rps:.0f} rps with events, "
              f"{writes.without_rps:.0f} rps without: {writes.ratio:.2f} x")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
