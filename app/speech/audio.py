"""One ffmpeg pass over the source's audio: 16 kHz mono for the recognisers, plus loudness.

The source's default audio stream is decoded once and split: ebur128 measures the original
channels at the original rate (what a listener hears), and a 16 kHz mono copy is written twice,
as a WAV of 16-bit samples (pocketsphinx, faster-whisper) and as raw float32 (silero VAD), so
no Python code converts samples. `first_pts=0` pads a late-starting audio track with silence:
every position is measured from the start of the clip, as players show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import anyio

from app.media.probe import PROBE_FORMATS, input_args
from app.media.runner import run_ffmpeg, timeout_for
from app.speech.models import LoudnessMetrics

SAMPLE_RATE = 16000
WAV_NAME = "speech.wav"
F32_NAME = "speech.f32"
LOUDNESS_NAME = "loudness.txt"
_F32_BYTES_PER_MS = SAMPLE_RATE // 1000 * 4


@dataclass(frozen=True)
class AudioFiles:
    """The extracted audio: the same samples as 16-bit WAV and as raw float32."""

    wav_path: Path
    f32_path: Path
    duration_ms: int


def extract_args(source: Path, audio_index: int) -> list[str]:
    """ffmpeg arguments (run with the scratch folder as working directory)."""
    graph = (
        f"[0:{audio_index}]asplit=2[loud][speech];"
        f"[loud]ebur128=peak=true+sample:metadata=1,"
        f"ametadata=mode=print:file={LOUDNESS_NAME},anullsink;"
        f"[speech]aresample={SAMPLE_RATE}:first_pts=0,"
        "aformat=sample_fmts=flt:channel_layouts=mono,asplit=2[f32][s16]"
    )
    return [
        *input_args(source, PROBE_FORMATS),
        "-filter_complex",
        graph,
        "-map",
        "[s16]",
        "-c:a",
        "pcm_s16le",
        "-f",
        "wav",
        "-y",
        WAV_NAME,
        "-map",
        "[f32]",
        "-c:a",
        "pcm_f32le",
        "-f",
        "f32le",
        "-y",
        F32_NAME,
    ]


async def extract(
    source: Path, *, audio_index: int, work: Path, duration_ms: int | None
) -> tuple[AudioFiles, LoudnessMetrics | None]:
    """Decode the audio stream `audio_index` of `source` into `work` and measure its loudness.
    Raises FfmpegFailed / FfmpegTimeout (app.media.errors)."""
    await run_ffmpeg(
        extract_args(source, audio_index),
        timeout_s=timeout_for(duration_ms, base_s=60.0, factor=2.0),
        duration_ms=duration_ms,
        cwd=work,
    )
    f32 = work / F32_NAME
    size = (await anyio.to_thread.run_sync(f32.stat)).st_size
    files = AudioFiles(
        wav_path=work / WAV_NAME, f32_path=f32, duration_ms=size // _F32_BYTES_PER_MS
    )
    return files, await anyio.to_thread.run_sync(parse_loudness, work / LOUDNESS_NAME)


def _db(linear: float) -> float | None:
    return round(20 * math.log10(linear), 2) if linear > 0 else None


def parse_loudness(path: Path) -> LoudnessMetrics | None:
    """The last integrated loudness and range ebur128 reported (they cover the whole input)
    and the highest peaks; None when it reported nothing (no audio frames)."""
    integrated = lra = None
    true_peak = sample_peak = 0.0
    try:
        handle = path.open(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    with handle:
        for line in handle:
            key, sep, value = line.strip().partition("=")
            if not sep:
                continue
            try:
                number = float(value)
            except ValueError:
                continue
            if not math.isfinite(number):
                continue
            if key == "lavfi.r128.I":
                integrated = number
            elif key == "lavfi.r128.LRA":
                lra = number
            elif key == "lavfi.r128.true_peak":
                true_peak = max(true_peak, number)
            elif key == "lavfi.r128.sample_peak":
                sample_peak = max(sample_peak, number)
    if integrated is None:
        return None
    return LoudnessMetrics(
        integrated_lufs=round(integrated, 2),
        range_lu=round(lra or 0.0, 2),
        true_peak_dbtp=_db(true_peak),
        sample_peak_dbfs=_db(sample_peak),
    )
