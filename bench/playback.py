"""Playback benchmark: the hot paths of HLS playback against bare endpoints.

On PostgreSQL (a scratch database created and dropped here), a clip with a 60-segment
variant playlist is published, on local storage or (--storage s3) in a bucket of a moto
server started here (presigning is local work: the bucket is only read at startup). One API
process (uvicorn, one worker) serves, each beside a bare FastAPI endpoint of the same app:

- `/v1/play/{token}/v0/index.m3u8` (token check: one primary-key query, and the token's
  viewer's access from the per-process cache, read again every --access-recheck-s; the
  playlist's text from the in-memory cache; its 61 URIs are segment URLs under the token,
  nothing signed), against a bare endpoint returning a static string of the same size;
- `/v1/play/{token}/s/v0/seg_00001.m4s` (token check, then a 302 to a URL minted for this
  request: one HMAC on local storage, one SigV4 presign on S3), against a bare endpoint
  answering a static 302.

32 keep-alive clients (raw asyncio streams in this process, so the load generator costs
little) fetch each in turn.

Goal: each playback route ≥ 0.3x its bare endpoint's requests per second.

    .venv/bin/python bench/playback.py [--seconds 10] [--clients 32] [--storage local|s3]
        [--access-recheck-s 30] [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
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
import logging
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from bench import harness
from bench.dataset import media_manifest

SEGMENTS = 60
BUCKET = "bench-playback"


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


# --- storage ----------------------------------------------------------------------------------


@contextmanager
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server in this process, with fake credentials the API process inherits."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def storage_settings(endpoint: str) -> dict[str, Any]:
    """Settings for S3 storage at endpoint; none for local storage ("-")."""
    if endpoint == "-":
        return {}
    return {"storage": "s3", "s3_endpoint_url": endpoint, "s3_bucket": BUCKET}


# --- the server process ---------------------------------------------------------------------


def serve(
    port: int, database_url: str, media_dir: str, bare_size: int, endpoint: str, recheck_s: int
) -> None:
    from fastapi import Response
    from fastapi.responses import PlainTextResponse

    from app.main import create_app

    settings = harness.settings(port, database_url, media_dir)
    overrides = storage_settings(endpoint) | {"playback_access_recheck_s": recheck_s}
    app = create_app(settings.model_copy(update=overrides))
    body = "#" * bare_size
    # A Location about as long as a presigned S3 GET.
    location = "http://127.0.0.1:9/bench/" + "x" * 400

    @app.get("/bench/bare.m3u8")
    async def bare() -> PlainTextResponse:
        return PlainTextResponse(body, media_type="application/vnd.apple.mpegurl")

    @app.get("/bench/bare.m4s")
    async def bare_redirect() -> Response:
        return Response(
            status_code=302, headers={"Location": location, "Cache-Control": "private, max-age=60"}
        )

    harness.serve(app, port)


# --- setup ------------------------------------------------------------------------------------


async def setup(database_url: str, media_dir: Path, endpoint: str) -> str:
    """Publish a ready clip with one 60-segment rendition; return its playlist path."""
    from app.clips.models import Clip, ClipKind, ClipStatus, Visibility
    from app.db import make_engine, make_sessionmaker, uuid7
    from app.orgs.service import create_org
    from app.playback.signing import make_token
    from app.storage import LocalStorage, S3Storage, Storage

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
        media = media_manifest(created.org.id, clip_id)
        viewer_id = created.admin.id
        prefix = media["prefix"]
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
    storage: Storage
    if endpoint == "-":
        storage = LocalStorage(media_dir, secret_key=harness.SECRET, public_base_url="http://x")
    else:
        s3 = S3Storage(bucket=BUCKET, region="us-east-1", endpoint_url=endpoint)
        await s3.ensure_bucket([], allow_any_origin=True)
        storage = s3
    playlist = media_dir / "playlist.m3u8"
    playlist.write_text(variant_playlist())
    await storage.put_file(prefix + "v0/index.m3u8", playlist)
    # Bound to the org's admin, like the token GET /v1/clips/{id}/playback hands out.
    token = make_token(harness.SECRET, clip_id, "1-1", int(time.time()) + 3600, viewer_id)
    return f"/v1/play/{token}/v0/index.m3u8"


# --- load: the harness's generator, for any expected status ------------------------------------


async def _client(
    port: int, request: bytes, status: bytes, stop_at: float, latencies: list[float]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            await harness.exchange(reader, writer, request, status)
            latencies.append(time.perf_counter() - start)
    finally:
        writer.close()


async def _load(port: int, path: str, status: int, clients: int, seconds: float) -> harness.Tally:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    start = time.perf_counter()
    expected = str(status).encode()
    await asyncio.gather(
        *(_client(port, request, expected, start + seconds, latencies) for _ in range(clients))
    )
    return harness.Tally(len(latencies), time.perf_counter() - start, latencies)


def load(port: int, path: str, status: int, clients: int, seconds: float) -> harness.Tally:
    return asyncio.run(_load(port, path, status, clients, seconds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--storage", choices=("local", "s3"), default="local")
    parser.add_argument(
        "--access-recheck-s",
        type=int,
        default=30,
        help="PEERPITCH_PLAYBACK_ACCESS_RECHECK_S of the server (1: a re-read every second)",
    )
    harness.add_database_url(parser)
    parser.add_argument("--serve", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, url, media, size, endpoint, recheck_s = args.serve
        serve(int(port), url, media, int(size), endpoint, int(recheck_s))
        return 0

    name = f"pp_bench_playback_{os.getpid()}"
    with (
        harness.scratch_database(args.database_url, name) as url,
        tempfile.TemporaryDirectory(prefix="pp-bench-playback-") as media,
        s3_endpoint() if args.storage == "s3" else nullcontext("-") as endpoint,
    ):
        path = asyncio.run(setup(url, Path(media), endpoint))
        segment = path.replace("v0/index.m3u8", "s/v0/seg_00001.m4s")
        # Size of the playlist, so the bare endpoint returns as many bytes.
        recheck = str(args.access_recheck_s)
        with harness.running_server(__file__, url, media, "0", endpoint, recheck) as probe_port:
            size = len(harness.fetch(probe_port, path).content)
        with harness.running_server(__file__, url, media, str(size), endpoint, recheck) as port:
            body = harness.fetch(port, path).text
            # Every URI a segment URL under the token.
            assert body.count(segment.removesuffix("seg_00001.m4s")) == SEGMENTS + 1, body[:300]
            print(f"{args.storage} storage; playlist: {size} bytes, {SEGMENTS} segments + init; "
                  f"{args.clients} clients, {args.seconds:.0f} s per run; access re-read "
                  f"every {args.access_recheck_s} s")  # fmt: skip
            runs: dict[str, tuple[str, int]] = {
                "bare 200": ("/bench/bare.m3u8", 200),
                "playlist": (path, 200),
                "bare 302": ("/bench/bare.m4s", 302),
                "segment": (segment, 302),
            }
            results: dict[str, list[harness.Tally]] = {label: [] for label in runs}
            for p, status in runs.values():  # warm-up
                load(port, p, status, args.clients, 2)
            for _ in range(2):  # interleaved, so drift hits all alike
                for label, (p, status) in runs.items():
                    results[label].append(load(port, p, status, args.clients, args.seconds))
    summary: dict[str, float] = {}
    for label, tallies in results.items():
        rps = statistics.mean(t.rps for t in tallies)
        p99 = statistics.mean(t.pct(99) for t in tallies)
        summary[label] = rps
        print(f"{label:>9}: {rps:8.0f} req/s   p99 {p99:6.1f} ms")
    ratios = {
        "playlist": summary["playlist"] / summary["bare 200"],
        "segment": summary["segment"] / summary["bare 302"],
    }
    for label, ratio in ratios.items():
        print(f"  {label} ratio: {ratio:.2f} of its bare endpoint's throughput (goal ≥ 0.3)")
    return 0 if min(ratios.values()) >= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
