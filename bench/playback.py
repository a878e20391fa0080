"""Signed-playlist benchmark: the hot path of HLS playback against a bare endpoint.

On PostgreSQL (a scratch database created and dropped here) with local storage, a clip with
a 60-segment variant playlist is published. One API process (uvicorn, one worker) serves
both `/v1/play/{token}/v0/index.m3u8` (token check: one primary-key query; the playlist's
text from the in-memory cache; 61 URIs signed) and a bare FastAPI endpoint added to the same
app that returns a static string of the same size. 32 keep-alive clients (raw asyncio
streams in this process, so the load generator costs little) fetch each in turn.

Goal: signed playlist ≥ 0.3x the bare endpoint's requests per second.

    .venv/bin/python bench/playback.py [--seconds 10] [--clients 32]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
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
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid

from sqlalchemy.engine import make_url

SEGMENTS = 60
SECRET = "bench-secret-key-that-is-long-enough-for-hs256-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def variant_playlist() -> str:
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MAP:URI="init.mp4"',
    ]
    for i in range(1, SEGMENTS + 1):
        lines += ["#EXTINF:4.000000,", f"seg_{i:05d}.m4s"]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


# --- the server process ---------------------------------------------------------------------


def serve(port: int, database_url: str, media_dir: str, bare_size: int) -> None:
    import uvicorn
    from fastapi.responses import PlainTextResponse

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
    app = create_app(settings)
    body = "#" * bare_size

    @app.get("/bench/bare.m3u8")
    async def bare() -> PlainTextResponse:
        return PlainTextResponse(body, media_type="application/vnd.apple.mpegurl")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- setup ------------------------------------------------------------------------------------


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password, database=u.database
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def setup(database_url: str, media_dir: Path) -> str:
    """Publish a ready clip with one 60-segment rendition; return its playlist path."""
    from app.clips.models import Clip, ClipKind, ClipStatus, Visibility
    from app.db import make_engine, make_sessionmaker, uuid7
    from app.orgs.service import create_org
    from app.playback.signing import make_token
    from app.storage.local import LocalStorage

    engine = make_engine(database_url)
    clip_id = uuid7()
    async with make_sessionmaker(engine).begin() as session:
        created = await create_org(
            session,
            name="Bench",
            admin_email=f"bench-{uuid.uuid4().hex[:8]}@example.com",
            admin_password="correct-horse-battery",
            admin_name="Bench",
        )
        prefix = f"orgs/{created.org.id}/clips/{clip_id}/media/1-1/"
        media = {
            "version": "1-1",
            "prefix": prefix,
            "master": "master.m3u8",
            "variants": [
                {"name": "v0", "width": 640, "height": 360, "bandwidth": 1_000_000,
                 "codecs": "avc1.42c01e,mp4a.40.2", "playlist": "v0/index.m3u8"}
            ],
            "download": None, "poster": None, "storyboard": None, "storyboard_vtt": None,
        }  # fmt: skip
        session.add(
            Clip(
                id=clip_id,
                org_id=created.org.id,
                owner_id=created.admin.id,
                title="bench",
                kind=ClipKind.exemplar,
                stage="contact_to_trial",
                visibility=Visibility.org,
                status=ClipStatus.ready,
                duration_ms=SEGMENTS * 4000,
                media=media,
                filename="bench.mp4",
                content_type="video/mp4",
                size_bytes=1,
                source_key=f"orgs/{created.org.id}/clips/{clip_id}/source",
            )
        )
    await engine.dispose()
    storage = LocalStorage(media_dir, secret_key=SECRET, public_base_url="http://x")
    playlist = media_dir / "playlist.m3u8"
    playlist.write_text(variant_playlist())
    await storage.put_file(prefix + "v0/index.m3u8", playlist)
    token = make_token(SECRET, clip_id, "1-1", int(time.time()) + 3600)
    return f"/v1/play/{token}/v0/index.m3u8"


# --- the load generator -----------------------------------------------------------------------


async def _client(port: int, path: str, stop_at: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"{path} answered {head[:12]!r}")
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def load(port: int, path: str, clients: int, seconds: float) -> tuple[float, float]:
    latencies: list[float] = []
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(_client(port, path, stop_at, latencies) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else 0.0
    return len(latencies) / elapsed, p99 * 1000


def fetch(port: int, path: str) -> bytes:
    import httpx

    r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    r.raise_for_status()
    return r.content


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "PEERPITCH_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server to create the scratch database on",
    )
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, url, media, size = args.serve
        serve(int(port), url, media, int(size))
        return 0

    from app.migrate import upgrade_head

    name = f"pp_bench_playback_{os.getpid()}"
    asyncio.run(_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    server: subprocess.Popen[bytes] | None = None
    try:
        upgrade_head(url, quiet=True)
        with tempfile.TemporaryDirectory(prefix="pp-bench-playback-") as media:
            path = asyncio.run(setup(url, Path(media)))
            port = _free_port()
            probe_port = port
            # Size of the signed playlist, so the bare endpoint returns as many bytes.
            server = _start(port, url, media, 0)
            size = len(fetch(probe_port, path))
            server.terminate()
            server.wait(30)
            server = _start(port, url, media, size)
            body = fetch(port, path).decode()
            assert body.count("sig=") == SEGMENTS + 1, body[:300]  # every URI signed
            print(f"signed playlist: {size} bytes, {SEGMENTS} segments + init, "
                  f"{args.clients} clients, {args.seconds:.0f} s per run")  # fmt: skip
            results: dict[str, list[tuple[float, float]]] = {"bare": [], "signed": []}
            bare_path = "/bench/bare.m3u8"
            asyncio.run(load(port, bare_path, args.clients, 2))  # warm-up
            asyncio.run(load(port, path, args.clients, 2))
            for _ in range(2):  # interleaved, so drift hits both alike
                for label, p in (("bare", bare_path), ("signed", path)):
                    results[label].append(asyncio.run(load(port, p, args.clients, args.seconds)))
            summary: dict[str, tuple[float, float]] = {}
            for label, runs in results.items():
                rps = statistics.mean(r for r, _ in runs)
                p99 = statistics.mean(p for _, p in runs)
                summary[label] = (rps, p99)
                print(f"{label:>7}: {rps:8.0f} req/s   p99 {p99:6.1f} ms")
            ratio = summary["signed"][0] / summary["bare"][0]
            print(f"  ratio: {ratio:.2f} of the bare endpoint's throughput (goal ≥ 0.3)")
            return 0 if ratio >= 0.3 else 1
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(30)
        asyncio.run(_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _profile_args() -> list[str]:
    # PEERPITCH_BENCH_PROFILE=/tmp/out.prof: run the API under cProfile (for investigation).
    out = os.environ.get("PEERPITCH_BENCH_PROFILE")
    return ["-m", "cProfile", "-o", out] if out else []


def _start(port: int, url: str, media: str, size: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, *_profile_args(), __file__, "--serve", str(port), url, media, str(size)],
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


if __name__ == "__main__":
    sys.exit(main())
