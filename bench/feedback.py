"""Feedback-listing benchmark: a busy clip's first page of threads against GET /v1/me.

On PostgreSQL (a scratch database created and dropped here), bench/dataset.py loads one
organization with 10,000 playable clips and 1,000,000 feedback items (20 % replies, some
resolved, helpful reactions on a fraction); one clip carries 2,000 of them. One API process
(uvicorn, one worker) serves `GET /v1/clips/{id}/feedback` (its first page: 50 threads with
their replies, helpful counts and the caller's reactions) and `GET /v1/me` (token check and
one primary-key query: the cheapest authenticated endpoint). 32 keep-alive clients (raw
asyncio streams in this process, so the load generator costs little) drive each in turn,
in rounds ordered A B B A so drift and the neighbours' load hit both alike.

Goals: feedback page p99 < 50 ms and ≥ 0.3x /v1/me's requests per second.

    .venv/bin/python bench/feedback.py [--clips 10000] [--feedback 1000000]
        [--hot-items 2000] [--seconds 10] [--rounds 2] [--clients 32] [--explain]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

A quick smoke run: `--clips 200 --feedback 20000 --seconds 2 --rounds 1`.
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
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

SECRET = "bench-secret-key-that-is-long-enough-for-hs256-0123456789"
P99_GOAL_MS = 50.0
RATIO_GOAL = 0.3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the server process ---------------------------------------------------------------------


def serve(port: int, database_url: str, media_dir: str) -> None:
    import uvicorn

    from app.config import Settings
    from app.main import create_app

    settings = Settings(
        database_url=database_url,
        secret_key=SECRET,
        media_dir=Path(media_dir),
        embedded_worker=False,
        log_level="WARNING",
        public_base_url=f"http://127.0.0.1:{port}",
    )
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)  # fmt: skip


def _start(port: int, url: str, media: str) -> subprocess.Popen[bytes]:
    # PEERPITCH_BENCH_PROFILE=/tmp/out.prof: run the API under cProfile (for investigation).
    out = os.environ.get("PEERPITCH_BENCH_PROFILE")
    profile = ["-m", "cProfile", "-o", out] if out else []
    server = subprocess.Popen(
        [sys.executable, *profile, __file__, "--serve", str(port), url, media],
        cwd=str(BENCH.parent),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API did not start") from None
            time.sleep(0.05)


# --- the load generator -----------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.seconds += other.seconds
        self.latencies += other.latencies

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: int) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


async def _client(port: int, request: bytes, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            if head[9:12] != b"200":
                raise RuntimeError(f"answered {head[:12]!r}: {body[:300]!r}")
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def load(port: int, path: str, token: str, clients: int, seconds: float) -> Tally:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(
        *(_client(port, request, start + seconds, latencies) for _ in range(clients))
    )
    return Tally(len(latencies), time.perf_counter() - start, latencies)


def fetch(port: int, path: str, token: str) -> Any:
    import httpx

    r = httpx.get(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    r.raise_for_status()
    return r.json()


# --- the queries behind one page ------------------------------------------------------------


async def explain(url: str, clip_id: uuid.UUID, viewer_id: uuid.UUID, show: bool) -> None:
    """Run list_threads as the endpoint does, capture its SQL, EXPLAIN ANALYZE each one."""
    from sqlalchemy import event

    from app.db import make_engine, make_sessionmaker
    from app.feedback.service import FeedbackFilters, list_threads
    from app.pagination import PageParams
    from app.tenancy import Principal
    from app.users.models import User

    engine = make_engine(url)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: Any) -> None:
        captured.append((statement, params))

    try:
        async with make_sessionmaker(engine)() as session:
            user = await session.get(User, viewer_id)
            assert user is not None
            page = PageParams(limit=50, cursor=None)
            for _ in range(3):  # warm caches; keep the last run's statements
                captured.clear()
                await list_threads(session, Principal(user=user), clip_id, FeedbackFilters(), page)
            statements = list(captured)
            conn = await session.connection()
            print(f"  list_threads issues {len(statements)} statements for one page "
                  "(+1 for the caller's user in a request):")  # fmt: skip
            for i, (sql, params) in enumerate(statements, 1):
                result = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = [row[0] for row in result]
                took = next((ln for ln in plan if ln.startswith("Execution Time")), "?")
                first = " ".join(sql.split())[:90]
                print(f"   {i}. {took:<28} {first}…")
                if show:
                    print("      " + " ".join(sql.split()))
                    print("      params: " + repr(params)[:300])
                    for ln in plan:
                        print("      | " + ln)
    finally:
        await engine.dispose()


async def run_sql(url: str, statements: list[str]) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username,
                                 password=u.password, database=u.database)  # fmt: skip
    try:
        for statement in statements:
            print(f"  extra SQL: {statement}")
            await conn.execute(statement)
        await conn.execute("ANALYZE feedback")
    finally:
        await conn.close()


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=10_000, help="clips in the data set")
    parser.add_argument("--feedback", type=int, default=1_000_000, help="feedback items in all")
    parser.add_argument("--hot-items", type=int, default=2_000,
                        help="feedback items on the clip whose page is fetched")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10, help="length of one round")
    parser.add_argument("--rounds", type=int, default=2,
                        help="A B B A blocks: each endpoint runs 2x this many rounds")  # fmt: skip
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--explain", action="store_true",
                        help="print the EXPLAIN ANALYZE plans of the page's queries")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch database, named pp_bench_feedback")  # fmt: skip
    parser.add_argument("--sql", action="append", default=[], metavar="STATEMENT",
                        help="run after seeding, e.g. to try an index (repeatable)")  # fmt: skip
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "PEERPITCH_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server to create the scratch database on",
    )
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, url, media = args.serve
        serve(int(port), url, media)
        return 0

    from app.auth.security import issue_access_token
    from app.migrate import create_scratch_database, drop_scratch_database, upgrade_head
    from bench.dataset import build_dataset

    name = "pp_bench_feedback" if args.keep else f"pp_bench_feedback_{os.getpid()}"
    url = asyncio.run(create_scratch_database(args.database_url, name))
    server: subprocess.Popen[bytes] | None = None
    try:
        upgrade_head(url, quiet=True)
        print(f"seeding {args.clips:,} clips and {args.feedback:,} feedback items into {name}")
        data = asyncio.run(
            build_dataset(
                url, clips=args.clips, feedback=args.feedback, hot_items=args.hot_items,
                seed=args.seed,
            )
        )  # fmt: skip
        if args.sql:
            asyncio.run(run_sql(url, args.sql))
        token = issue_access_token(
            user_id=data.viewer_id, org_id=data.org_id, role="rep", secret=SECRET, ttl_s=6 * 3600
        )
        with tempfile.TemporaryDirectory(prefix="pp-bench-feedback-") as media:
            port = _free_port()
            server = _start(port, url, media)
            me, page = "/v1/me", f"/v1/clips/{data.hot_clip_id}/feedback"
            body = fetch(port, page, token)
            items = body["items"]
            replies = sum(t["reply_count"] for t in items)
            helpful = sum(t["helpful_count"] > 0 for t in items) + sum(
                r["helpful_count"] > 0 for t in items for r in t["replies"]
            )
            mine = sum(t["reacted_by_me"] for t in items) + sum(
                r["reacted_by_me"] for t in items for r in t["replies"]
            )
            size = len(json.dumps(body))
            assert len(items) == min(50, args.hot_items), len(items)
            print(f"page: {len(items)} threads, {replies} replies, {helpful} items marked "
                  f"helpful ({mine} by the caller), ~{size / 1024:.0f} KiB; "
                  f"{args.clients} clients, {args.seconds:g} s rounds")  # fmt: skip
            asyncio.run(explain(url, data.hot_clip_id, data.viewer_id, args.explain))

            for p in (me, page):  # warm-up
                asyncio.run(load(port, p, token, args.clients, 2))
            # Unloaded latency: the service time without queueing behind the other clients.
            solo = {p: asyncio.run(load(port, p, token, 1, 3)) for p in (me, page)}
            tallies = {me: Tally(), page: Tally()}
            for _ in range(args.rounds):  # A B B A: a linear drift hits both alike
                for p in (me, page, page, me):
                    tallies[p].add(asyncio.run(load(port, p, token, args.clients, args.seconds)))
        return report(tallies[me], tallies[page], solo[me], solo[page])
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(30)
        if not args.keep:
            asyncio.run(drop_scratch_database(args.database_url, name))


def report(me: Tally, page: Tally, solo_me: Tally, solo_page: Tally) -> int:
    print(f"{'':>22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}")
    for label, t in (("GET /v1/me", me), ("GET …/feedback", page)):
        print(f"{label:>22} {t.rps:8.0f} {t.pct(50):8.1f} {t.pct(99):8.1f} {t.requests:9d}")
    print(f"{'1 client: /v1/me':>22} {solo_me.rps:8.0f} {solo_me.pct(50):8.1f} "
          f"{solo_me.pct(99):8.1f}")  # fmt: skip
    print(f"{'1 client: …/feedback':>22} {solo_page.rps:8.0f} {solo_page.pct(50):8.1f} "
          f"{solo_page.pct(99):8.1f}")  # fmt: skip
    ratio = page.rps / me.rps
    p99 = page.pct(99)
    ok_ratio, ok_p99 = ratio >= RATIO_GOAL, p99 < P99_GOAL_MS
    print(f"  throughput ratio: {ratio:.2f} of /v1/me's (goal ≥ {RATIO_GOAL}) "
          f"{'met' if ok_ratio else 'MISSED'}")  # fmt: skip
    print(f"  p99: {p99:.1f} ms (goal < {P99_GOAL_MS:.0f} ms) {'met' if ok_p99 else 'MISSED'}; "
          f"p99 ratio to /v1/me {p99 / me.pct(99):.2f}")  # fmt: skip
    return 0 if ok_ratio and ok_p99 else 1


if __name__ == "__main__":
    sys.exit(main())
