"""The ASR child process: voice activity and transcription, off the worker's event loop.

    python -m app.speech '<SpeechSettings as JSON>'

It loads the VAD and the engine first (while the parent runs ffmpeg), then reads one
`ChildJob` line on stdin and answers on stdout with JSON lines: `{"progress": f}` while it
works, then `{"result": ChildResult}`. End of input without a job: exit 0 (nothing to do).
Exit status 3: the engine could not be loaded (a configuration problem, not worth a retry);
any other failure: 1, with a traceback on stderr.

Its own process, not a thread: pocketsphinx holds the GIL for seconds at a time (heartbeats
and, in the embedded worker, API requests would stall), a process can be killed on
cancellation or timeout, and its ~200 MB of model go away with it.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ConfigDict

from app.speech.audio import AudioFiles
from app.speech.engines import AsrEngine, load_engine
from app.speech.models import Transcript
from app.speech.settings import SpeechSettings
from app.speech.vad import SileroVad, speech_regions, utterances

EXIT_ENGINE_ERROR = 3
# Share of the reported progress given to voice activity (it takes ~1 % of the time).
VAD_SHARE = 0.05


class ChildJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wav_path: Path
    f32_path: Path
    duration_ms: int


class ChildResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regions: list[tuple[int, int]]
    transcript: Transcript | None
    vad_ms: int
    asr_ms: int | None
    peak_rss_bytes: int


def run(
    settings: SpeechSettings,
    job: ChildJob,
    vad: SileroVad,
    engine: AsrEngine | None,
    out: IO[str],
) -> ChildResult:
    """Voice activity over the whole file, then the engine over the speech in it."""
    last = -1.0

    def progress(fraction: float) -> None:
        nonlocal last
        if fraction - last >= 0.01 or fraction >= 1.0:
            last = fraction
            out.write(f'{{"progress": {round(fraction, 4)}}}\n')
            out.flush()

    windows = max(1, round(job.duration_ms / vad.window_ms))
    started = time.perf_counter()
    probs = vad.probabilities(
        job.f32_path, on_window=lambda n: progress(VAD_SHARE * min(1.0, n / windows))
    )
    regions = speech_regions(
        probs,
        window_ms=vad.window_ms,
        threshold=settings.vad_threshold,
        neg_threshold=settings.vad_neg_threshold,
        min_silence_ms=settings.min_silence_ms,
        min_speech_ms=settings.min_speech_ms,
    )
    vad_ms = round((time.perf_counter() - started) * 1000)
    transcript: Transcript | None = None
    asr_ms: int | None = None
    speech_ms = sum(r.duration_ms for r in regions)
    if engine is not None and speech_ms >= settings.min_total_speech_ms:
        started = time.perf_counter()
        spans = utterances(
            regions,
            probs,
            window_ms=vad.window_ms,
            duration_ms=job.duration_ms,
            pad_ms=settings.asr_pad_ms,
        )
        transcript = engine.transcribe(
            AudioFiles(job.wav_path, job.f32_path, job.duration_ms),
            spans,
            on_progress=lambda f: progress(VAD_SHARE + (1 - VAD_SHARE) * f),
        )
        asr_ms = round((time.perf_counter() - started) * 1000)
    progress(1.0)
    return ChildResult(
        regions=[(r.start_ms, r.end_ms) for r in regions],
        transcript=transcript,
        vad_ms=vad_ms,
        asr_ms=asr_ms,
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )


def main(argv: list[str]) -> int:
    # Protocol lines go to the original stdout; anything a library prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    settings = SpeechSettings.model_validate_json(argv[1])
    try:
        vad = SileroVad()
        engine = load_engine(settings)
    except Exception:
        traceback.print_exc()
        return EXIT_ENGINE_ERROR
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    job = ChildJob.model_validate_json(line)
    result = run(settings, job, vad, engine, out)
    out.write('{"result": ' + result.model_dump_json() + "}\n")
    out.flush()
    return 0
