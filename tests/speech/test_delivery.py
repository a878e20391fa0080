"""Speech regions from VAD probabilities, utterances for the recogniser, delivery metrics and
flags: pure functions on made-up inputs."""

from __future__ import annotations

import itertools

from app.speech.delivery import delivery_metrics, flags
from app.speech.models import LoudnessMetrics, TranscriptMetrics
from app.speech.settings import SpeechSettings
from app.speech.vad import Region, speech_regions, utterances

W = 32.0  # silero's window at 16 kHz, ms


def probs(pattern: str) -> list[float]:
    """'#' speech (0.9), '+' undecided (0.4), '.' silence (0.05): one window each."""
    return [{"#": 0.9, "+": 0.4, ".": 0.05}[c] for c in pattern]


def regions(pattern: str, *, min_silence_ms: int = 300, min_speech_ms: int = 100) -> list[Region]:
    return speech_regions(
        probs(pattern),
        window_ms=W,
        threshold=0.5,
        neg_threshold=0.35,
        min_silence_ms=min_silence_ms,
        min_speech_ms=min_speech_ms,
    )


def test_region_starts_at_first_speech_window_and_ends_where_silence_began() -> None:
    assert regions("....######" + "." * 20) == [Region(4 * 32, 10 * 32)]


def test_short_silences_stay_inside_speech() -> None:
    # 5 windows (160 ms) of silence < 300 ms: one region; 10 windows (320 ms): two.
    assert regions("#####.....#####" + "." * 12) == [Region(0, 15 * 32)]
    assert regions("#####..........#####" + "." * 12) == [
        Region(0, 5 * 32),
        Region(15 * 32, 20 * 32),
    ]


def test_undecided_windows_neither_start_nor_end_speech() -> None:
    assert regions("++++++++") == []
    # Inside speech, '+' does not count as silence, so no split here.
    assert regions("#####++++++++++#####" + "." * 12) == [Region(0, 20 * 32)]


def test_bursts_shorter_than_min_speech_are_dropped() -> None:
    assert regions("##" + "." * 12 + "######" + "." * 12) == [Region(14 * 32, 20 * 32)]


def test_speech_running_to_the_end_is_closed() -> None:
    assert regions("..######") == [Region(64, 256)]
    assert regions("..######...") == [Region(64, 160 + 96)]


def test_utterances_merge_close_regions_pad_and_never_overlap() -> None:
    found = [Region(1000, 2000), Region(2500, 4000), Region(7000, 8000)]
    got = utterances(found, [], window_ms=W, duration_ms=8100, pad_ms=200)
    assert got == [Region(800, 4200), Region(6800, 8100)]
    # Pads meet halfway between two regions that are too far apart to merge.
    got = utterances(
        [Region(0, 1000), Region(1300, 2000)], [], window_ms=W, duration_ms=3000, pad_ms=200,
        merge_gap_ms=100,
    )  # fmt: skip
    assert got == [Region(0, 1150), Region(1150, 2200)]


def test_long_utterances_are_cut_at_the_least_speechlike_window() -> None:
    p = [0.9] * 2000  # 64 s of speech
    p[700] = 0.1  # 22.4 s, inside the last third of the first 30 s
    got = utterances([Region(0, 64000)], p, window_ms=W, duration_ms=64000, pad_ms=0)
    assert got[0] == Region(0, 700 * 32)
    assert all(u.duration_ms <= 30_000 for u in got)
    assert got[-1].end_ms == 64000
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(got))


def test_delivery_metrics() -> None:
    speech = [Region(1500, 4000), Region(4500, 6000), Region(8000, 9000), Region(10200, 12000)]
    d = delivery_metrics(speech, duration_ms=13000, pause_min_ms=1000)
    assert d.speaking_ms == 2500 + 1500 + 1000 + 1800
    assert d.speaking_ratio == round(6800 / 13000, 4)
    assert d.time_to_first_word_ms == 1500
    assert d.trailing_silence_ms == 1000
    assert [(p.start_ms, p.end_ms, p.duration_ms) for p in d.pauses] == [
        (6000, 8000, 2000),
        (9000, 10200, 1200),
    ]
    assert (d.pause_count, d.longest_pause_ms) == (2, 2000)
    assert d.longest_monologue_ms == 6000 - 1500  # 0.5 s between the first two is no pause


def test_delivery_metrics_without_speech() -> None:
    d = delivery_metrics([], duration_ms=5000, pause_min_ms=1000)
    assert (d.speaking_ms, d.speaking_ratio, d.pause_count, d.longest_monologue_ms) == (0, 0, 0, 0)
    assert d.time_to_first_word_ms == 5000


def _loud(lufs: float, peak: float | None) -> LoudnessMetrics:
    return LoudnessMetrics(
        integrated_lufs=lufs, range_lu=5, true_peak_dbtp=peak, sample_peak_dbfs=peak
    )


def _words(wpm: float, fpm: float) -> TranscriptMetrics:
    return TranscriptMetrics(words=100, words_per_minute=wpm, fillers=3, fillers_per_minute=fpm)


def test_flags_and_their_thresholds() -> None:
    s = SpeechSettings()
    calm = delivery_metrics(
        [Region(1000, 5000), Region(6500, 9000)], duration_ms=9500, pause_min_ms=1000
    )
    slow = delivery_metrics(
        [Region(6000, 8000), Region(12000, 13000)], duration_ms=14000, pause_min_ms=1000
    )
    assert flags(s, calm, _loud(-20, -3), None, transcript_trusted=False) == ()
    assert flags(s, slow, _loud(-35, 0.2), None, transcript_trusted=False) == (
        "too_quiet", "clipping", "long_pauses", "slow_start",
    )  # fmt: skip
    assert flags(s, calm, None, _words(200, 9), transcript_trusted=True) == (
        "too_fast", "many_fillers",
    )  # fmt: skip
    assert flags(s, calm, None, _words(90, 1), transcript_trusted=True) == ("too_slow",)
    # A low-confidence transcript raises nothing.
    assert flags(s, calm, None, _words(90, 9), transcript_trusted=False) == ()
    # Digital silence has no peak: no clipping.
    assert flags(s, calm, _loud(-20, None), None, transcript_trusted=False) == ()
    lenient = SpeechSettings(too_quiet_lufs=-40, long_pause_ms=5000, slow_start_ms=7000)
    assert flags(lenient, slow, _loud(-35, -1), None, transcript_trusted=False) == ()
