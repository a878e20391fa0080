"""Transcode benchmark through the whole service, side by side with bare ffmpeg, in one run.

A 60 s 1920x1080 30 fps clip with audio is generated, then, interleaved per repetition:

  * service: `peerpitch serve` + `peerpitch worker` (SQLite, local storage): upload with the
    multipart protocol, then poll GET /v1/clips/{id}; time from `complete` to `viewable` and
    to `ready` (download, probe, the ffmpeg run, uploads, publication), as x duration;
  * bare: the very ffmpeg commands the pipeline runs, executed directly one after the other;
  * per-rendition: one ffmpeg process per rendition, as MediaCMS does (strictest form: the
    storyboard and poster ride along with the first, so only decoding is repeated).

Goals: viewable ≤ 0.2x, ready ≤ 0.7x of the duration; service ÷ per-rendition ≤ 0.85;
service ÷ bare ≤ 1.05 in wall time, ≤ 1.03 in CPU seconds.

A player is simulated too: it starts at `viewable` and plays from the start in real time,
each segment as soon as it is stored (the segment files' modification times in the media
folder); the bench prints the time it waited for segments (goal: 0 s). `--readrate R` reads
the source at R x real time (PEERPITCH_TRANSCODE_READRATE), standing in for a worker slower
than real time; that run skips the bare and per-rendition commands.

The worker polls SQLite for jobs every `--poll-s` (0.1 s), standing in for PostgreSQL's
NOTIFY wake-up; with the service's default 2 s poll, every figure would include 0-2 s of queue
wait. The machine is shared and noisy: use `--reps 3` (medians) for figures worth recording.

    .venv/bin/python bench/transcode.py [--reps 1] [--noise] [--poll-s 0.1] [--readrate R]
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
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

import httpx

from app.media.plan import parse_media_playlist, plan_transcode
from app.media.probe import probe
from bench.transcode_core import DURATION_S, bare, make_source, per_rung

ROOT = BENCH.parent
PEERPITCH = str(ROOT / ".venv" / "bin" / "peerpitch")


def process_cpu_s(pid: int) -> float:
    """CPU seconds of a process plus those of its waited-for children (ffmpeg, for a worker)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """API and one worker as separate processes, on a scratch SQLite database and folder."""

    def __init__(self, work: Path, poll_s: float, readrate: float | None = None) -> None:
        self.port = _free_port()
        self.media = work / "media"
        self.env = {
            **os.environ,
            "PEERPITCH_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'bench.db'}",
            "PEERPITCH_MEDIA_DIR": str(work / "media"),
            "PEERPITCH_SCRATCH_DIR": str(work / "scratch"),
            "PEERPITCH_SECRET_KEY": "bench-secret-key-bench-secret-key",
            "PEERPITCH_EMBEDDED_WORKER": "false",
            "PEERPITCH_LOG_LEVEL": "WARNING",
            "PEERPITCH_WORKER_CONCURRENCY": "1",
            # On SQLite an idle worker finds new jobs by polling (PostgreSQL wakes it with
            # NOTIFY within milliseconds); the default 2 s poll would add 0-2 s of queue wait.
            "PEERPITCH_JOB_POLL_INTERVAL_S": str(poll_s),
        }
        if readrate is not None:
            self.env["PEERPITCH_TRANSCODE_READRATE"] = str(readrate)
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
        cpu0 = process_cpu_s(self.procs[1].pid)
        wall0 = time.time()  # segment files' mtimes are wall-clock times
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
        marks["cpu"] = process_cpu_s(self.procs[1].pid) - cpu0
        marks["stall"] = self.stalled(clip_id, wall0 + marks["viewable"])
        return marks

    def stalled(self, clip_id: str, start: float) -> float:
        """Seconds a real-time player that starts at `start` waits for segments: each is
        there from its file's modification time (stored by rename, so whole then)."""
        [playlist] = self.media.glob(f"orgs/*/clips/{clip_id}/media/*/v0/index.m3u8")
        _, segments = parse_media_playlist(playlist.read_text())
        clock, waited = start, 0.0
        for segment in segments:
            stored = (playlist.parent / segment.uri).stat().st_mtime
            if stored > clock:
                waited += stored - clock
                clock = stored
            clock += segment.duration_s
        return waited

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
    parser.add_argument(
        "--poll-s",
        type=float,
        default=0.1,
        help="the worker's job poll interval (SQLite has no NOTIFY; default %(default)s s)",
    )
    parser.add_argument(
        "--readrate",
        type=float,
        default=None,
        help="read the source at this many x real time (a slower worker); service only",
    )
    args = parser.parse_args()

    cache = Path(tempfile.gettempdir()) / "peerpitch-bench"
    cache.mkdir(exist_ok=True)
    source = cache / f"source-{DURATION_S}s-1080p{'-noise' if args.noise else ''}.mp4"
    make_source(source, args.noise)
    plan = plan_transcode(asyncio.run(probe(source)))

    work = Path(tempfile.mkdtemp(prefix="pp-bench-transcode-"))
    service = Service(work, args.poll_s, args.readrate)
    keys = ("viewable", "ready", "stall", "service_cpu", "bare", "bare_cpu", "per", "per_cpu")
    results: dict[str, list[float]] = {k: [] for k in keys}
    d = float(DURATION_S)
    print(f"transcode benchmark: {DURATION_S} s 1920x1080 30 fps with audio, {args.reps} rep(s)")
    try:
        for rep in range(args.reps):
            marks = service.run(source)
            results["viewable"].append(marks["viewable"])
            results["ready"].append(marks["ready"])
            results["service_cpu"].append(marks["cpu"])
            results["stall"].append(marks["stall"])
            if args.readrate is not None:
                print(
                    f"  rep {rep + 1}: readrate {args.readrate}: viewable "
                    f"{marks['viewable'] / d:.3f}x  ready {marks['ready'] / d:.3f}x  player "
                    f"stalled {marks['stall']:.1f} s  (load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
                continue
            for name, fn in (
                ("bare", lambda out: bare(source, out, plan, None)),
                ("per", lambda out: per_rung(source, out, plan, None, concurrent=False)),
            ):
                out = work / f"{name}-{rep}"
                cpu0, t0 = children_cpu_s(), time.monotonic()
                asyncio.run(fn(out))
                results[name].append(time.monotonic() - t0)
                results[f"{name}_cpu"].append(children_cpu_s() - cpu0)
                shutil.rmtree(out)
            print(
                f"  rep {rep + 1}: viewable {marks['viewable'] / d:.3f}x  ready "
                f"{marks['ready'] / d:.3f}x  ÷ bare {marks['ready'] / results['bare'][-1]:.3f}  "
                f"÷ per-rendition {marks['ready'] / results['per'][-1]:.3f}  "
                f"player stalled {marks['stall']:.1f} s  "
                f"(load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    finally:
        service.close()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"medians over {args.reps} rep(s)")
    print(
        f"  player from viewable   stalled {med['stall']:.1f} s in all (worst rep "
        f"{max(results['stall']):.1f} s; goal 0 s)"
    )
    if args.readrate is not None:
        print(
            f"  readrate {args.readrate}: complete → viewable {med['viewable']:.1f} s = "
            f"{med['viewable'] / d:.3f}x, → ready {med['ready']:.1f} s = {med['ready'] / d:.3f}x"
        )
        return
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
        f"{med['ready'] / med['bare']:.3f}  (goal ≤ 1.05)"
    )
    print(
        f"  one process/rendition {med['per']:6.1f} s  service ÷ per-rendition = "
        f"{med['ready'] / med['per']:.3f}  (goal ≤ 0.85)"
    )
    # CPU seconds hardly depend on what else the machine runs: a check on the wall ratios.
    print(
        f"  CPU seconds: service {med['service_cpu']:.1f} (worker and its ffmpeg), bare "
        f"{med['bare_cpu']:.1f}, per-rendition {med['per_cpu']:.1f}; service ÷ bare = "
        f"{med['service_cpu'] / med['bare_cpu']:.3f} (goal ≤ 1.03), service ÷ per-rendition = "
        f"{med['service_cpu'] / med['per_cpu']:.3f}"
    )


if __name__ == "__main__":
    main()
