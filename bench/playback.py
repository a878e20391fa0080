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
import statistics
import tempfile
import time
import uuid

from bench import harness
from bench.dataset import media_manifest

SEGMENTS = 60


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
    from fastapi.responses import PlainTextResponse

    app = harness.build_app(port, database_url, media_dir)
    body = "#" * bare_size

    @app.get("/bench/bare.m3u8")
    async def bare() -> PlainTextResponse:
        return PlainTextResponse(body, media_type="application/vnd.apple.mpegurl")

    harness.serve(app, port)


# --- setup ------------------------------------------------------------------------------------


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
        media = media_manifest(created.org.id, clip_id)
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
    storage = LocalStorage(media_dir, secret_key=harness.SECRET, public_base_url="http://x")
    playlist = media_dir / "playlist.m3u8"
    playlist.write_text(variant_playlist())
    await storage.put_file(prefix + "v0/index.m3u8", playlist)
    token = make_token(harness.SECRET, clip_id, "1-1", int(time.time()) + 3600)
    return f"/v1/play/{token}/v0/index.m3u8"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=32)
    harness.add_database_url(parser)
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, url, media, size = args.serve
        serve(int(port), url, media, int(size))
        return 0

    name = f"pp_bench_playback_{os.getpid()}"
    with (
        harness.scratch_database(args.database_url, name) as url,
        tempfile.TemporaryDirectory(prefix="pp-bench-playback-") as media,
    ):
        path = asyncio.run(setup(url, Path(media)))
        # Size of the signed playlist, so the bare endpoint returns as many bytes.
        with harness.running_server(__file__, url, media, "0") as probe_port:
            size = len(harness.fetch(probe_port, path).content)
        with harness.running_server(__file__, url, media, str(size)) as port:
            body = harness.fetch(port, path).text
            assert body.count("sig=") == SEGMENTS + 1, body[:300]  # every URI signed
            print(f"signed playlist: {size} bytes, {SEGMENTS} segments + init, "
                  f"{args.clients} clients, {args.seconds:.0f} s per run")  # fmt: skip
            results: dict[str, list[harness.Tally]] = {"bare": [], "signed": []}
            bare_path = "/bench/bare.m3u8"
            harness.load(port, bare_path, None, args.clients, 2)  # warm-up
            harness.load(port, path, None, args.clients, 2)
            for _ in range(2):  # interleaved, so drift hits both alike
                for label, p in (("bare", bare_path), ("signed", path)):
                    results[label].append(harness.load(port, p, None, args.clients, args.seconds))
    summary: dict[str, tuple[float, float]] = {}
    for label, runs in results.items():
        rps = statistics.mean(r.rps for r in runs)
        p99 = statistics.mean(r.pct(99) for r in runs)
        summary[label] = (rps, p99)
        print(f"{label:>7}: {rps:8.0f} req/s   p99 {p99:6.1f} ms")
    ratio = summary["signed"][0] / summary["bare"][0]
    print(f"  ratio: {ratio:.2f} of the bare endpoint's throughput (goal ≥ 0.3)")
    return 0 if ratio >= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
