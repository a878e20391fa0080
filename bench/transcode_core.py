"""Scratch benchmark of app.media alone (no database, no storage).

Generates a 60 s 1920x1080 30 fps clip with audio, then measures, interleaved so that other
load on the machine hits every variant alike:

- ours:        app.media.transcode() — time to the first on_partial (viewable) and to
               return (ready), as x duration;
- bare:        the same ffmpeg commands as `ours` run directly, one after the other;
- per-rung:    one ffmpeg process per rendition, storyboard and poster riding along with the
               first (strict: the only duplicated work is decoding);
- mediacms:    one process per rendition plus the storyboard sprite and the poster in their
               own processes, as MediaCMS does (produce_sprite_from_video decodes it all);
- per-rung concurrent (--concurrent): the per-rung processes all at once.

CPU seconds (children's user+sys) are printed too: unlike wall time they do not depend on
what else the machine is running.

    .venv/bin/python bench/transcode_core.py [--reps 2] [--noise] [--preset P] [--threads N]
"""

# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the stdlib `queue` (used by asyncio.to_thread) for scripts here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

from app.media import transcode
from app.media.pipeline import PartialOutput, concat_rendition, finish_playlists
from app.media.plan import TranscodePlan, encode_args, plan_transcode, remux_download_args
from app.media.probe import input_args, probe

DURATION_S = 60
GLOBAL = ["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


async def sh(args: list[str], cwd: Path) -> None:
    proc = await asyncio.create_subprocess_exec("ffmpeg", *GLOBAL, *args, cwd=cwd)
    if await proc.wait() != 0:
        raise SystemExit(f"ffmpeg failed: {args}")


def make_source(path: Path, noise: bool) -> None:
    if path.exists():
        return
    video = f"testsrc2=s=1920x1080:r=30:d={DURATION_S}"
    if noise:  # camera-like sensor noise: much harder to encode than a clean test pattern
        video += ",noise=alls=10:allf=t"
    args = [
        "-f", "lavfi", "-i", video,
        "-f", "lavfi", "-i", f"sine=f=440:d={DURATION_S}:sample_rate=48000",
        "-c:v", "libx264", "-preset", "superfast", "-b:v", "8M", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "160k", "-ac", "2", str(path),
    ]  # fmt: skip
    asyncio.run(sh(args, path.parent))


async def ours(src: Path, out: Path, preset: str | None, threads: int | None) -> dict[str, float]:
    t0 = time.monotonic()
    marks: dict[str, float] = {}

    async def partial(_: PartialOutput) -> None:
        marks.setdefault("viewable", time.monotonic() - t0)

    await transcode(
        src,
        out,
        max_duration_s=1800,
        max_dimension=4096,
        on_partial=partial,
        preset=preset,
        x264_threads=threads,
    )
    marks["ready"] = time.monotonic() - t0
    return marks


async def bare(src: Path, out: Path, plan: TranscodePlan, threads: int | None) -> None:
    """Exactly the commands transcode() runs, with no runner, no probe, no bookkeeping."""
    out.mkdir()
    for r in plan.renditions:
        (out / r.name).mkdir()
    await sh(encode_args(plan, src, plan.renditions, with_images=True, x264_threads=threads), out)
    finish_playlists(plan, out)
    concat_rendition(out, plan.download, out / ".download.fmp4")
    await sh(remux_download_args(out / ".download.fmp4"), out)


def image_jobs(src: Path, plan: TranscodePlan) -> list[list[str]]:
    """Storyboard and poster as separate ffmpeg runs (same filters as our first pass)."""
    sb, po = plan.storyboard, plan.poster
    graph = (
        f"[0:{plan.video_index}]fps={plan.fps.numerator}/{plan.fps.denominator},"
        f"select='gte(t,selected_n*{sb.interval_s})',scale={sb.tile_width}:{sb.tile_height},"
        f"setsar=1,tile={sb.columns}x{sb.rows}[o]"
    )
    sprite = [*input_args(src), "-filter_complex", graph, "-map", "[o]", "-frames:v", "1"]
    sprite += ["-q:v", "3", "-f", "image2", "-update", "1", "storyboard.jpg"]
    poster_graph = (
        f"[0:{plan.video_index}]trim=duration=1,scale={po.width}:{po.height},"
        f"thumbnail=n={po.window_frames}[o]"
    )
    poster = ["-ss", f"{po.at_s:.3f}", *input_args(src), "-filter_complex", poster_graph]
    poster += ["-map", "[o]", "-frames:v", "1", "-q:v", "3", "-f", "image2", "poster.jpg"]
    return [sprite, poster]


async def per_rung(
    src: Path,
    out: Path,
    plan: TranscodePlan,
    threads: int | None,
    concurrent: bool,
    separate_images: bool = False,
) -> None:
    out.mkdir()
    jobs = []
    for i, r in enumerate(plan.renditions):
        (out / r.name).mkdir()
        images = i == 0 and not separate_images
        jobs.append(encode_args(plan, src, [r], with_images=images, x264_threads=threads))
    if separate_images:
        jobs += image_jobs(src, plan)
    if concurrent:
        await asyncio.gather(*(sh(a, out) for a in jobs))
    else:
        for a in jobs:
            await sh(a, out)
    finish_playlists(plan, out)
    concat_rendition(out, plan.download, out / ".download.fmp4")
    await sh(remux_download_args(out / ".download.fmp4"), out)


async def timed(fn: Callable[[], Awaitable[object]]) -> tuple[float, float, object]:
    c0, t0 = cpu_children(), time.monotonic()
    value = await fn()
    return time.monotonic() - t0, cpu_children() - c0, value


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--noise", action="store_true")
    ap.add_argument("--preset", default=None, help="force one x264 preset for all rungs")
    ap.add_argument("--threads", type=int, default=None, help="x264 threads per encoder")
    ap.add_argument("--concurrent", action="store_true", help="also per-rung all at once")
    opts = ap.parse_args()

    cache = Path(tempfile.gettempdir()) / "peerpitch-bench"
    cache.mkdir(exist_ok=True)
    src = cache / f"src_{DURATION_S}s_1080p{'_noise' if opts.noise else ''}.mp4"
    make_source(src, opts.noise)
    plan = plan_transcode(asyncio.run(probe(src)), preset=opts.preset)
    print(
        f"source {src.name}; cores {os.cpu_count()}; renditions "
        + ", ".join(
            f"{r.width}x{r.height}@{r.video_bitrate // 1000}k/{r.preset}" for r in plan.renditions
        )
    )
    results: dict[str, list[tuple[float, float]]] = {}
    marks: dict[str, list[dict[str, float]]] = {}
    variants: list[tuple[str, Callable[[Path], Awaitable[object]]]] = [
        ("ours", lambda o: ours(src, o, opts.preset, opts.threads)),
        ("bare", lambda o: bare(src, o, plan, opts.threads)),
        ("per-rung", lambda o: per_rung(src, o, plan, opts.threads, False)),
        ("mediacms", lambda o: per_rung(src, o, plan, opts.threads, False, True)),
    ]
    if opts.concurrent:
        variants.append(
            ("per-rung concurrent", lambda o: per_rung(src, o, plan, opts.threads, True))
        )
    for rep in range(opts.reps):
        for name, fn in variants:
            work = Path(tempfile.mkdtemp(dir=cache))
            try:
                wall, cpu, value = asyncio.run(timed(lambda: fn(work / "out")))  # noqa: B023
            finally:
                shutil.rmtree(work)
            results.setdefault(name, []).append((wall, cpu))
            if name == "ours":
                assert isinstance(value, dict)
                marks.setdefault(name, []).append(value)
            print(f"  rep {rep + 1} {name:22s} wall {wall:6.1f}s  cpu {cpu:6.1f}s", flush=True)

    def med(name: str, i: int) -> float:
        return statistics.median(x[i] for x in results[name])

    d = DURATION_S
    print(f"\nmedians over {opts.reps} rep(s), load average now {os.getloadavg()[0]:.1f}")
    for name, runs in marks.items():
        viewable = statistics.median(m["viewable"] for m in runs)
        ready = statistics.median(m["ready"] for m in runs)
        print(
            f"{name:12s} viewable {viewable:5.1f}s = {viewable / d:.3f}x (goal <= 0.2)   "
            f"ready {ready:5.1f}s = {ready / d:.3f}x (goal <= 0.7)"
        )
    for name, _ in variants[1:]:
        print(
            f"ours / {name:22s} wall {med('ours', 0) / med(name, 0):.3f}  "
            f"cpu {med('ours', 1) / med(name, 1):.3f}"
        )
    cpu = med("ours", 1)
    print(f"cpu seconds: ours {cpu:.1f} = {cpu / 2 / d:.3f}x duration if 2 cores were all ours")


if __name__ == "__main__":
    main()
