"""Delivery metrics from speech regions and loudness, and the flags they raise (pure)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from app.speech.models import (
    DeliveryMetrics,
    Flag,
    LoudnessMetrics,
    Pause,
    TranscriptMetrics,
)
from app.speech.settings import SpeechSettings
from app.speech.vad import Region


def delivery_metrics(
    regions: Sequence[Region], *, duration_ms: int, pause_min_ms: int
) -> DeliveryMetrics:
    """Speaking time is the time inside speech regions (silences shorter than the VAD's
    `min_silence_ms` included); pauses are silences between two regions of at least
    `pause_min_ms` (the silence before the first word and after the last are not pauses)."""
    speaking = sum(r.duration_ms for r in regions)
    pauses = [
        Pause(start_ms=a.end_ms, end_ms=b.start_ms, duration_ms=b.start_ms - a.end_ms)
        for a, b in itertools.pairwise(regions)
        if b.start_ms - a.end_ms >= pause_min_ms
    ]
    # Monologues: from a region's start to the start of the next pause (or the last word).
    longest_monologue = 0
    if regions:
        start = regions[0].start_ms
        for a, b in itertools.pairwise(regions):
            if b.start_ms - a.end_ms >= pause_min_ms:
                longest_monologue = max(longest_monologue, a.end_ms - start)
                start = b.start_ms
        longest_monologue = max(longest_monologue, regions[-1].end_ms - start)
    return DeliveryMetrics(
        duration_ms=duration_ms,
        speaking_ms=speaking,
        speaking_ratio=round(speaking / duration_ms, 4) if duration_ms > 0 else 0.0,
        time_to_first_word_ms=regions[0].start_ms if regions else duration_ms,
        trailing_silence_ms=max(0, duration_ms - regions[-1].end_ms) if regions else duration_ms,
        pause_count=len(pauses),
        longest_pause_ms=max((p.duration_ms for p in pauses), default=0),
        pauses=tuple(pauses),
        longest_monologue_ms=longest_monologue,
    )


def flags(
    settings: SpeechSettings,
    delivery: DeliveryMetrics,
    loudness: LoudnessMetrics | None,
    transcript: TranscriptMetrics | None,
    *,
    transcript_trusted: bool,
) -> tuple[Flag, ...]:
    """Flags in a stable order. Transcript flags need a trusted (high-confidence) transcript:
    the metrics of a low-confidence one are reported, but they raise nothing."""
    raised: list[Flag] = []
    if loudness is not None:
        if loudness.integrated_lufs < settings.too_quiet_lufs:
            raised.append("too_quiet")
        if (
            loudness.true_peak_dbtp is not None
            and loudness.true_peak_dbtp >= settings.clipping_true_peak_dbtp
        ):
            raised.append("clipping")
    if delivery.longest_pause_ms >= settings.long_pause_ms:
        raised.append("long_pauses")
    if delivery.time_to_first_word_ms > settings.slow_start_ms:
        raised.append("slow_start")
    if transcript is not None and transcript_trusted:
        wpm = transcript.words_per_minute
        if wpm is not None and wpm < settings.too_slow_wpm:
            raised.append("too_slow")
        if wpm is not None and wpm > settings.too_fast_wpm:
            raised.append("too_fast")
        fpm = transcript.fillers_per_minute
        if fpm is not None and fpm > settings.many_fillers_per_min:
            raised.append("many_fillers")
    return tuple(raised)
