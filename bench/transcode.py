"""Transcode benchmark through the whole service, side by side with bare ffmpeg, in one run.

A 60 s 1920x1080 30 fps clip with audio is generated, then, interleaved per repetition:

  * service: `peerpitch serve` + `peerpitch worker` (SQLite, local storage): upload with the
    multipart protocol, then poll GET /v1/clips/{id}; time from `complete` to `viewable` and
    to `ready` (download, probe, both ffmpeg passes, uploads, publication), as x duration;
  * bare: the very ffmpeg commands the pipeline runs, executed directly one after the other;
  * per-rendition: one ffmpeg process per rendition, as MediaCMS does (strictest form: the
    storyboard and poster ride along with the first, so only decoding is repeated).

Goals: viewable ≤ 0.2x, ready ≤ 0.7x of the duration; service ÷ per-rendition ≤ 0.85;
service ÷ bare ≤ 1.10 (our overhead at most 10 %).

    .venv/bin/python bench/transcode.py [--reps 1] [--noise]
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
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import httpx

from app.media.plan import plan_transcode
from app.media.probe import probe
from bench.transcode_core import DURATION_S, bare, make_source, per_rung

ROOT = BENCH.parent
PEERPITCH = str(ROOT / ".venv" / "bin" / "peerpitch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """API and one worker as separate processes, on a scratch SQLite database and folder."""

    def __init__(self, work: Path) -> None:
        self.port = _free_port()
        self.env = {
            **os.environ,
            "PEERPITCH_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'bench.db'}",
            "PEERPITCH_MEDIA_DIR": str(work / "media"),
            "PEERPITCH_SCRATCH_DIR": str(work / "scratch"),
            "PEERPITCH_SECRET_KEY": "bench-secret-key-bench-secret-key",
            "PEERPITCH_EMBEDDED_WORKER": "false",
            "PEERPITCH_LOG_LEVEL": "WARNING",
            "PEERPITCH_WORKER_CONCURRENCY": "1",
        }
        subprocess.run([PEERPITCH, "migrate"], env=self.env, check=True, capture_output=True)
        subprocess.run(
            [PEERPITCH, "create-org", "--name", "Bench", "--admin-email",
             "bench@bench.example.com", "--admin-password", "bench-password"],
            env=self.env, check=True, capture_output=True,
        )  # fmt: skip
        self.procs = [
            subprocess.Popen(
                [PEERPITCH, "serve", "--port", str(self.port)],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [PEERPITCH, "worker"], env=self.env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
        ]  # fmt: skip
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)
        for _ in range(200):
            try:
                if self.api.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        token = self.api.post(
            "/v1/auth/token",
            json={"email": "bench@bench.example.com", "password": "bench-password"},
        ).json()["access_token"]
        self.auth = {"Authorization": f"Bearer {token}"}

    def run(self, source: Path) -> dict[str, float]:
        data = source.read_bytes()
        created = self.api.post(
            "/v1/clips",
            headers=self.auth,
            json={"title": "bench", "kind": "pitch", "stage": "closing", "filename": "b.mp4",
                  "content_type": "video/mp4", "size_bytes": len(data)},
        ).json()  # fmt: skip
        upload, clip_id = created["upload"], created["clip"]["id"]
        size, count = upload["part_size"], upload["part_count"]
        parts = self.api.post(
            f"/v1/uploads/{upload['id']}/parts",
            headers=self.auth,
            json={"part_numbers": list(range(1, count + 1))},
        ).json()["parts"]
        etags = []
        for p in parts:
            n = p["number"]
            r = self.api.put(p["url"], content=data[(n - 1) * size : n * size])
            etags.append({"number": n, "etag": r.headers["etag"]})
        t0 = time.monotonic()
        self.api.post(
            f"/v1/uploads/{upload['id']}/complete", headers=self.auth, json={"parts": etags}
        ).raise_for_status()
        marks: dict[str, float] = {}
        while "ready" not in marks:
            clip = self.api.get(f"/v1/clips/{clip_id}", headers=self.auth).json()
            if clip["status"] in ("viewable", "ready"):
                marks.setdefault("viewable", time.monotonic() - t0)
            if clip["status"] == "ready":
                marks["ready"] = time.monotonic() - t0
            if clip["status"] == "failed":
                raise SystemExit(f"transcode failed: {clip['error']}")
            time.sleep(0.05)
        return marks

    def close(self) -> None:
        self.api.close()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--noise", action="store_true", help="camera-like, harder source")
    args = parser.parse_args()

    cache = Path(tempfile.gettempdir()) / "peerpitch-bench"
    cache.mkdir(exist_ok=True)
    source = cache / f"source-{DURATION_S}s-1080p{'-noise' if args.noise else ''}.mp4"
    make_source(source, args.noise)
    plan = plan_transcode(asyncio.run(probe(source)))

    work = Path(tempfile.mkdtemp(prefix="pp-bench-transcode-"))
    service = Service(work)
    results: dict[str, list[float]] = {"viewable": [], "ready": [], "bare": [], "per": []}
    try:
        for rep in range(args.reps):
            marks = service.run(source)
            results["viewable"].append(marks["viewable"])
            results["ready"].append(marks["ready"])
            for name, fn in (
                ("bare", lambda out: bare(source, out, plan, None)),
                ("per", lambda out: per_rung(source, out, plan, None, concurrent=False)),
            ):
                out = work / f"{name}-{rep}"
                t0 = time.monotonic()
                asyncio.run(fn(out))
                results[name].append(time.monotonic() - t0)
                shutil.rmtree(out)
    finally:
        service.close()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    d = float(DURATION_S)
    print(f"transcode benchmark: {DURATION_S} s 1920x1080 30 fps with audio, {args.reps} rep(s)")
    print(
        f"  complete → viewable   {med['viewable']:6.1f} s  = {med['viewable'] / d:.3f}x duration"
        "  (goal ≤ 0.2x)"
    )
    print(
        f"  complete → ready      {med['ready']:6.1f} s  = {med['ready'] / d:.3f}x duration"
        "  (goal ≤ 0.7x)"
    )
    print(
        f"  bare ffmpeg commands  {med['bare']:6.1f} s  service ÷ bare = "
        f"{med['ready'] / med['bare']:.3f}  (goal ≤ 1.10)"
    )
    print(
        f"  one process/rendition {med['per']:6.1f} s  service ÷ per-rendition = "
        f"{med['ready'] / med['per']:.3f}  (goal ≤ 0.85)"
    )


if __name__ == "__main__":
    main()
