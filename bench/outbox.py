"""The outbox's cost on a write: creating feedback (a thread on a rep's pitch, posted by a top
performer, so the owner's notification is written too) with events recorded, against the same
statement path with recording switched off, side by side in one run.

Two API processes on one scratch PostgreSQL database, one of them started with the outbox
switched off; A B B A rounds of keep-alive clients POSTing feedback alternate between them.
Goal: with events >= 0.9 x the throughput without.

    .venv/bin/python bench/outbox.py --seconds 10 --rounds 2 --clients 16
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
import time
import uuid
from typing import Any

from bench import harness

SCRIPT = str(Path(__file__).resolve())


def _serve(port: int, url: str, media: str, outbox: str) -> None:
    if outbox == "off":
        from app.events import service

        async def no_event(*_args: Any, **_kwargs: Any) -> None:
            return None

        service.record = no_event  # type: ignore[assignment]
    harness.serve(harness.build_app(port, url, media), port)


async def _seed(url: str) -> tuple[str, str, str]:
    """An org, a rep's ready pitch and a top performer: (clip id, token, org id)."""
    from sqlalchemy import update

    from app.clips.models import Clip, ClipKind, ClipStatus, Visibility
    from app.db import make_engine, make_sessionmaker
    from app.orgs.service import create_org
    from app.users.models import Role
    from app.users.service import add_user

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            created = await create_org(
                session,
                name="Bench",
                admin_email="admin@bench.test",
                admin_password="bench-password",
                admin_name="Admin",
            )
            org_id = created.org.id
            rep = await add_user(
                session, org_id=org_id, email="rep@bench.test", name="Rep", role=Role.rep,
                password="bench-password",
            )  # fmt: skip
            top = await add_user(
                session, org_id=org_id, email="top@bench.test", name="Top",
                role=Role.top_performer, password="bench-password",
            )  # fmt: skip
            clip = Clip(
                org_id=org_id, owner_id=rep.id, title="Pitch", kind=ClipKind.pitch,
                stage="closing", filename="p.mp4", content_type="video/mp4", size_bytes=1,
                status=ClipStatus.awaiting_upload, visibility=Visibility.org, source_key="x",
            )  # fmt: skip
            session.add(clip)
            await session.flush()
            media = {"version": "1", "prefix": "x/", "master": "m.m3u8",
                     "variants": [{"playlist": "v0/index.m3u8"}]}  # fmt: skip
            await session.execute(
                update(Clip)
                .where(Clip.id == clip.id)
                .values(status=ClipStatus.ready, duration_ms=60_000, media=media)
            )
            return str(clip.id), harness.access_token(top.id, org_id, "top_performer"), str(org_id)
    finally:
        await engine.dispose()


def _post(port: int, path: str, token: str) -> bytes:
    body = json.dumps({"body": "Ask why before you demo.", "timestamp_ms": 12_000}).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _client(port: int, request: bytes, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            if head[9:12] != b"201":
                raise RuntimeError(f"answered {head[:12]!r}: {body[:300]!r}")
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


def _load(port: int, path: str, token: str, clients: int, seconds: float) -> harness.Tally:
    async def run() -> harness.Tally:
        request = _post(port, path, token)
        latencies: list[float] = []
        start = time.perf_counter()
        await asyncio.gather(
            *(_client(port, request, start + seconds, latencies) for _ in range(clients))
        )
        return harness.Tally(len(latencies), time.perf_counter() - start, latencies)

    return asyncio.run(run())


async def _events_written(url: str, org_id: str) -> int:
    conn = await harness.pg_connect(url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM events WHERE org_id = $1", uuid.UUID(org_id))
        )
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    harness.add_database_url(parser)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, url, media, outbox = args.serve
        _serve(int(port), url, media, outbox)
        return 0
    name = harness.scratch_name("pp_bench_outbox", keep=False)
    with harness.scratch_database(args.database_url, name) as url:
        clip_id, token, org_id = asyncio.run(_seed(url))
        path = f"/v1/clips/{clip_id}/feedback"
        media = str(Path("/tmp") / f"pp_bench_outbox_media_{name}")
        with (
            harness.running_server(SCRIPT, url, media, "on") as on_port,
            harness.running_server(SCRIPT, url, media, "off") as off_port,
        ):
            ports = {"with events": on_port, "without": off_port}
            for port in ports.values():  # warm both up
                _load(port, path, token, args.clients, 2)
            solo = {label: _load(p, path, token, 1, 3) for label, p in ports.items()}
            tallies = {label: harness.Tally() for label in ports}
            for _ in range(args.rounds):
                for label in ("with events", "without", "without", "with events"):
                    tallies[label].add(_load(ports[label], path, token, args.clients, args.seconds))
        written = asyncio.run(_events_written(url, org_id))
    print(f"POST {path} ({args.clients} clients, {args.rounds} A B B A rounds of "
          f"{args.seconds:.0f} s; PostgreSQL)")  # fmt: skip
    harness.print_table(
        [(f"POST {k}", t) for k, t in tallies.items()],
        [(f"1 client: {k}", t) for k, t in solo.items()],
    )
    on, off = tallies["with events"], tallies["without"]
    ratio = on.rps / off.rps
    print(f"  events written by the 'with events' server: {written} "
          f"(2 a request: feedback.created and the owner's notification.created)")  # fmt: skip
    print(f"  throughput with events: {ratio:.2f} x the throughput without (goal >= 0.9) "
          f"{'met' if ratio >= 0.9 else 'MISSED'}")  # fmt: skip
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
