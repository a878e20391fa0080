"""What the HTTP benchmarks share: a scratch database, the API in a uvicorn subprocess, a
cheap keep-alive load generator, A B B A rounds, a results table and EXPLAIN ANALYZE of the
statements a service function issues.

Used by bench/playback.py, bench/feedback.py and bench/prep.py. A benchmark script puts the
project root (not bench/, whose queue.py would shadow the stdlib) on sys.path first, then::

    from bench import harness

    with harness.scratch_database(base_url, "pp_bench_x") as url:
        ...seed...
        with harness.running_server(__file__, url, media) as port:
            tallies = harness.abba(port, (me, page), token, clients=32, seconds=10, rounds=2)

The script itself serves the API when called as ``script --serve PORT URL MEDIA [EXTRA…]``
(see ``start_server``); ``build_app`` and ``serve`` do the work in that child process.
PEERPITCH_BENCH_PROFILE=/tmp/out.prof runs the API under cProfile (for investigation).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-key-that-is-long-enough-for-hs256-0123456789"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PEERPITCH_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="a PostgreSQL server to create the scratch database on",
    )


# --- PostgreSQL -------------------------------------------------------------------------------


def asyncpg_kwargs(database_url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    u = make_url(database_url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username,
        "password": u.password,
        "database": u.database,
    }


async def pg_connect(database_url: str) -> Any:
    """A raw asyncpg connection (COPY, DDL, ad-hoc SQL)."""
    import asyncpg

    return await asyncpg.connect(**asyncpg_kwargs(database_url))


async def run_sql(url: str, statements: Sequence[str], analyze: str = "") -> None:
    """Run ``statements`` (printed), e.g. an index to try; then ``ANALYZE <analyze>``."""
    conn = await pg_connect(url)
    try:
        for statement in statements:
            print(f"  extra SQL: {statement}")
            await conn.execute(statement)
        if analyze:
            await conn.execute(f"ANALYZE {analyze}")
    finally:
        await conn.close()


@contextmanager
def scratch_database(base_url: str, name: str, *, keep: bool = False) -> Iterator[str]:
    """Create (or recreate) database ``name`` next to ``base_url``, migrate it, yield its URL;
    drop it afterwards unless ``keep``."""
    from app.migrate import create_scratch_database, drop_scratch_database, upgrade_head

    url = asyncio.run(create_scratch_database(base_url, name))
    try:
        upgrade_head(url, quiet=True)
        yield url
    finally:
        if not keep:
            asyncio.run(drop_scratch_database(base_url, name))


# --- the server process ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(port: int, database_url: str, media_dir: str) -> Any:
    """The API's settings in a benchmark (no embedded worker, quiet logs)."""
    from app.config import Settings

    return Settings(
        database_url=database_url,
        secret_key=SECRET,
        media_dir=Path(media_dir),
        embedded_worker=False,
        log_level="WARNING",
        public_base_url=f"http://127.0.0.1:{port}",
    )


def build_app(port: int, database_url: str, media_dir: str) -> Any:
    """The product's app as `peerpitch serve` builds it, without the embedded worker."""
    from app.main import create_app

    return create_app(settings(port, database_url, media_dir))


def serve(app: Any, port: int) -> None:
    """Serve ``app`` with one uvicorn worker (in the --serve child)."""
    import gc

    import uvicorn

    gc.collect()  # as workers.asgi does for `peerpitch serve`
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_server(script: str, port: int, url: str, media: str, *extra: str) -> subprocess.Popen:
    """Run ``script --serve PORT URL MEDIA EXTRA…`` and wait until it accepts connections."""
    out = os.environ.get("PEERPITCH_BENCH_PROFILE")
    profile = ["-m", "cProfile", "-o", out] if out else []
    server = subprocess.Popen(
        [sys.executable, *profile, script, "--serve", str(port), url, media, *extra],
        cwd=str(ROOT),
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop_server(server)
                raise RuntimeError("the API did not start") from None
            time.sleep(0.05)


def stop_server(server: subprocess.Popen | None) -> None:
    """Stop the API with SIGINT: uvicorn shuts down as on SIGTERM, but then re-raises the
    signal, and only SIGINT's KeyboardInterrupt lets cProfile write its file."""
    if server is not None and server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(30)


@contextmanager
def running_server(script: str, url: str, media: str, *extra: str) -> Iterator[int]:
    """The API on a free port for the ``with`` block; yields the port."""
    port = free_port()
    server = start_server(script, port, url, media, *extra)
    try:
        yield port
    finally:
        stop_server(server)


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
        """The q-th percentile latency in ms (nan below two samples)."""
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000


def _request(port: int, path: str, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Accept: application/json\r\n\r\n"
    ).encode()


async def exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: bytes,
    status: bytes = b"200",
) -> bytes:
    """Send one request on a keep-alive connection and read its answer's body (raise unless
    it has ``status``)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length)
    if head[9:12] != status:
        raise RuntimeError(f"answered {head[:12]!r}: {body[:300]!r}")
    return body


async def _client(port: int, request: bytes, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            await exchange(reader, writer, request)
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def _load(port: int, path: str, token: str | None, clients: int, seconds: float) -> Tally:
    request = _request(port, path, token)
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(
        *(_client(port, request, start + seconds, latencies) for _ in range(clients))
    )
    return Tally(len(latencies), time.perf_counter() - start, latencies)


def load(port: int, path: str, token: str | None, clients: int, seconds: float) -> Tally:
    """``clients`` keep-alive connections (raw asyncio streams in this process, so the load
    generator costs little) GET ``path`` back to back for ``seconds``."""
    return asyncio.run(_load(port, path, token, clients, seconds))


async def _open_loop(
    port: int, path: str, token: str | None, rate: float, seconds: float, connections: int
) -> Tally:
    request = _request(port, path, token)
    due_times: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (due := await due_times.get()) is not None:
                await exchange(reader, writer, request)
                latencies.append(time.perf_counter() - due)
        finally:
            writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connected before the schedule starts
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        due_times.put_nowait(due)
    for _ in tasks:
        due_times.put_nowait(None)
    await asyncio.gather(*tasks)
    return Tally(len(latencies), time.perf_counter() - start, latencies)


def open_loop(
    port: int, path: str, token: str | None, rate: float, seconds: float, connections: int = 64
) -> Tally:
    """Open-loop load (wrk2-style): requests are sent on a fixed schedule of ``rate`` per
    second whether or not earlier ones were answered; each latency counts from the moment
    its request was due, so time spent queued (for a free connection or in the server) is
    included, never omitted. ``connections`` keep-alive connections carry the schedule."""
    return asyncio.run(_open_loop(port, path, token, rate, seconds, connections))


LATENCY_FACTOR = 4.0  # issue 17: p99 at half the maximum rate ≤ 4x the single-client p50


def latency_under_load(
    port: int, label: str, path: str, token: str | None, max_rps: float, solo: Tally,
    seconds: float,
) -> bool:  # fmt: skip
    """Offer half of ``max_rps`` open loop for ``seconds``; print the p50/p99 against the
    single-client p50 (``solo``); True when p99 ≤ LATENCY_FACTOR x that p50."""
    rate = max_rps / 2
    t = open_loop(port, path, token, rate, seconds)
    base = solo.pct(50)
    p99 = t.pct(99)
    ok = p99 <= LATENCY_FACTOR * base
    print(f"  open loop {label}: {rate:.0f} req/s offered (half of {max_rps:.0f}), "
          f"{t.rps:.0f} answered; p50 {t.pct(50):.1f} ms, p99 {p99:.1f} ms = "
          f"{p99 / base:.2f}x the 1-client p50 of {base:.2f} ms "
          f"(goal ≤ {LATENCY_FACTOR:g}x) {'met' if ok else 'MISSED'}")  # fmt: skip
    return ok


def ratio_line(label: str, subject: Tally, base_label: str, base: Tally, goal: float) -> bool:
    """Print ``subject``'s throughput as a ratio to ``base``'s; True when ≥ ``goal``."""
    ratio = subject.rps / base.rps
    ok = ratio >= goal
    print(f"  {label}: {subject.rps:.0f} req/s against {base_label}'s {base.rps:.0f}: "
          f"ratio {ratio:.2f} (goal ≥ {goal}) {'met' if ok else 'MISSED'}")  # fmt: skip
    return ok


def abba(
    port: int, paths: Sequence[str], token: str | None, clients: int, seconds: float,
    rounds: int,
) -> dict[str, Tally]:  # fmt: skip
    """Rounds ordered A B B A (A B C C B A for three paths), ``rounds`` times, so a linear
    drift (and the neighbours' load) hits every path alike. Each path gets 2 x ``rounds``
    rounds."""
    tallies = {p: Tally() for p in paths}
    for _ in range(rounds):
        for p in (*paths, *reversed(paths)):
            tallies[p].add(load(port, p, token, clients, seconds))
    return tallies


def warm_and_solo(
    port: int, paths: Iterable[str], token: str | None, clients: int, seconds: float = 3
) -> dict[str, Tally]:
    """Warm each path up under load, then measure it with one client: the service time
    without queueing behind the other clients."""
    paths = list(paths)
    for p in paths:
        load(port, p, token, clients, 2)
    return {p: load(port, p, token, 1, seconds) for p in paths}


def fetch(port: int, path: str, token: str | None = None) -> Any:
    """One GET through httpx (checked for 2xx); the httpx response."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=30)
    r.raise_for_status()
    return r


def print_table(loaded: Sequence[tuple[str, Tally]], solo: Sequence[tuple[str, Tally]]) -> None:
    """req/s, p50 and p99 (ms) a row: the loaded rounds' (with their request counts), then
    the single-client runs'."""
    print(f"{'':>22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}")
    for label, t in loaded:
        print(f"{label:>22} {t.rps:8.0f} {t.pct(50):8.1f} {t.pct(99):8.1f} {t.requests:9d}")
    for label, t in solo:
        print(f"{label:>22} {t.rps:8.0f} {t.pct(50):8.1f} {t.pct(99):8.1f}")


def against_health(
    port: int,
    label: str,
    path: str,
    me: str,
    token: str,
    args: argparse.Namespace,
    goal: float,
    shown: str,
) -> tuple[bool, dict[str, Tally]]:
    """``path`` side by side with /healthz and /v1/me (``me``) in one run: the table, its
    ratios to both (the goal against /healthz) and its latency under a fixed load. Returns
    whether the goals held and the single-client tallies."""
    health = "/healthz"
    paths = (health, me, path)

    def name(p: str) -> str:
        return shown if p == path else p

    solo = warm_and_solo(port, paths, token, args.clients)
    tallies = abba(port, paths, token, args.clients, args.seconds, args.rounds)
    print_table(
        [(f"GET {name(p)}", tallies[p]) for p in paths],
        [(f"1 client: {name(p)}", solo[p]) for p in paths],
    )
    ok = ratio_line(label, tallies[path], "/healthz", tallies[health], goal)
    ratio_line(label, tallies[path], "/v1/me", tallies[me], 0.0)
    ok = latency_under_load(
        port, label, path, token, tallies[path].rps, solo[path], args.seconds
    ) and ok  # fmt: skip
    return ok, solo


# --- the statements behind a request ------------------------------------------------------


async def explain_calls(
    url: str, call: Callable[[Any], Awaitable[Any]], heading: str, show: bool, warm: int = 3
) -> list[tuple[str, Any]]:
    """Run ``call(session)`` ``warm`` times, keep the last run's SQL, EXPLAIN ANALYZE each
    statement: one line with its execution time a statement, and with ``show`` the SQL, its
    parameters and the plan. ``heading`` is printed first, ``{n}`` the statement count.
    Returns the statements and their parameters."""
    from sqlalchemy import event

    from app.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: Any) -> None:
        captured.append((statement, params))

    try:
        async with make_sessionmaker(engine)() as session:
            for _ in range(warm):  # warm caches; keep the last run's statements
                captured.clear()
                await call(session)
            statements = list(captured)
            conn = await session.connection()
            print(heading.format(n=len(statements)))
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
            return statements
    finally:
        await engine.dispose()


# --- command line and report ------------------------------------------------------------------


def dataset_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of ``doc`` with the data-set sizes of
    bench/dataset.py (--clips, --feedback); add the benchmark's own, then ``add_run_args``."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clips", type=int, default=10_000, help="clips in the data set")
    parser.add_argument("--feedback", type=int, default=1_000_000, help="feedback items in all")
    return parser


def scratch_name(prefix: str, keep: bool) -> str:
    """``prefix`` itself with --keep (so a kept database is found again), else per process."""
    return prefix if keep else f"{prefix}_{os.getpid()}"


def access_token(user_id: Any, org_id: Any, role: str = "rep") -> str:
    """A bearer token the benchmark's API process accepts (6 hours)."""
    from app.auth.security import issue_access_token

    return issue_access_token(
        user_id=user_id, org_id=org_id, role=role, secret=SECRET, ttl_s=6 * 3600
    )


def parse_run_args(
    parser: argparse.ArgumentParser, keep_name: str, queries: str
) -> argparse.Namespace | None:
    """Add the options every A B B A benchmark takes (after its own data-set sizes) and
    parse the command line. In the --serve child (see ``start_server``) serve the product's
    app instead and return None."""
    parser.add_argument("--seconds", type=float, default=10, help="length of one round")
    parser.add_argument("--rounds", type=int, default=2,
                        help="A B B A blocks: each endpoint runs 2x this many rounds")  # fmt: skip
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--explain", action="store_true",
                        help=f"print the EXPLAIN ANALYZE plans of {queries}")  # fmt: skip
    parser.add_argument("--keep", action="store_true",
                        help=f"keep the scratch database, named {keep_name}")  # fmt: skip
    parser.add_argument("--sql", action="append", default=[], metavar="STATEMENT",
                        help="run after seeding, e.g. to try an index (repeatable)")  # fmt: skip
    add_database_url(parser)
    parser.add_argument("--no-cache", action="store_true",
                        help="serve with the read cache off (as READ_CACHE_ENTRIES=0)")  # fmt: skip
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.serve:
        return args
    port, url, media, *extra = args.serve
    app = build_app(int(port), url, media)
    if "no-cache" in extra and hasattr(app.state, "feedback_pages"):
        from app.readcache.cache import ReadCache

        app.state.feedback_pages = ReadCache(0)
        app.state.prep_kits = ReadCache(0)
    serve(app, int(port))
    return None


def cache_flag(args: argparse.Namespace) -> list[str]:
    """The extra argument of the --serve child for --no-cache."""
    return ["no-cache"] if getattr(args, "no_cache", False) else []
