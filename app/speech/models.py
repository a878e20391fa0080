"""The results of an analysis: plain pydantic models, stored as JSON and read back as is.

Positions and durations are integer milliseconds from the start of the recording (`*_ms`),
confidences are 0..1, loudness is in LUFS/LU/dB. `SpeechResult.model_dump(mode="json")` is
what the job stores; `SpeechResult.model_validate(stored)` reads it back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.speech.settings import EngineName

RESULT_VERSION = 1

Status = Literal["ready", "unavailable", "failed"]
# unavailable: nothing to analyse. failed: the analysis broke (see FAILED_RETRYABLE).
UnavailableReason = Literal["no_audio_stream", "silent", "no_speech"]
FailedReason = Literal["invalid_media", "ffmpeg_failed", "timeout", "asr_failed", "engine_error"]
ConfidenceClass = Literal["low", "high"]
Flag = Literal[
    "too_quiet",
    "clipping",
    "long_pauses",
    "slow_start",
    "too_slow",
    "too_fast",
    "many_fillers",
]
PhraseKind = Literal["use", "avoid"]

# A new attempt may succeed (a killed process, a busy machine); the others are final.
FAILED_RETRYABLE: frozenset[str] = frozenset({"ffmpeg_failed", "timeout", "asr_failed"})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Word(_Model):
    start_ms: int
    end_ms: int
    text: str
    confidence: float | None = None


class Segment(_Model):
    start_ms: int
    end_ms: int
    text: str
    confidence: float | None = None
    words: tuple[Word, ...] = ()


class Transcript(_Model):
    engine: EngineName
    confidence_class: ConfidenceClass
    language: str
    segments: tuple[Segment, ...] = ()

    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)


class Pause(_Model):
    start_ms: int
    end_ms: int
    duration_ms: int


class DeliveryMetrics(_Model):
    """From voice activity alone: robust whatever the engine."""

    duration_ms: int
    speaking_ms: int
    speaking_ratio: float
    time_to_first_word_ms: int
    # Silence after the last word (so clients can tell a long tail from a slow start).
    trailing_silence_ms: int
    pause_count: int
    longest_pause_ms: int
    pauses: tuple[Pause, ...] = ()
    # The longest stretch from a word to a word without a pause (≥ pause_min_ms).
    longest_monologue_ms: int


class LoudnessMetrics(_Model):
    """EBU R 128, measured by ffmpeg's ebur128 on the original channels and sample rate."""

    integrated_lufs: float  # -70.0 when nothing is above the absolute gate
    range_lu: float
    true_peak_dbtp: float | None  # None: digital silence
    sample_peak_dbfs: float | None


class TranscriptMetrics(_Model):
    words: int
    words_per_minute: float | None  # over speaking time; None without speaking time
    fillers: int
    fillers_per_minute: float | None
    filler_counts: dict[str, int] = Field(default_factory=dict)


class Metrics(_Model):
    delivery: DeliveryMetrics
    loudness: LoudnessMetrics | None
    transcript: TranscriptMetrics | None = None


_HAS_WORD = re.compile(r"\w")


class TalkTrackPhrase(_Model):
    """One phrase of a stage skill's talk track, as the stages API keeps it."""

    skill: str
    phrase: str = Field(min_length=1, max_length=200)
    kind: PhraseKind

    @field_validator("phrase")
    @classmethod
    def _has_a_word(cls, value: str) -> str:
        if not _HAS_WORD.search(value):
            raise ValueError("a phrase needs at least one word")
        return value


TalkTrack = Sequence[TalkTrackPhrase]


class PhraseResult(_Model):
    skill: str
    phrase: str
    kind: PhraseKind
    said: bool
    at_ms: tuple[int, ...] = ()  # start of each occurrence


class TalkTrackResult(_Model):
    phrases: tuple[PhraseResult, ...] = ()
    used: int  # phrases to use that were said
    missing: int  # phrases to use that were not said
    avoided_said: int  # phrases to avoid that were said anyway


class Processing(_Model):
    """How the analysis ran (operations, benchmarks); not part of the product."""

    elapsed_ms: int
    vad_ms: int | None = None
    asr_ms: int | None = None
    asr_peak_rss_bytes: int | None = None


class SpeechResult(_Model):
    version: int = RESULT_VERSION
    status: Status
    # Why unavailable or failed (UnavailableReason | FailedReason); None when ready.
    reason: UnavailableReason | FailedReason | None = None
    message: str | None = None
    engine: EngineName
    confidence_class: ConfidenceClass | None = None  # None: no transcript
    language: str
    duration_ms: int | None = None
    metrics: Metrics | None = None
    flags: tuple[Flag, ...] = ()
    talk_track: TalkTrackResult | None = None
    transcript: Transcript | None = None
    processing: Processing | None = None

    def is_retryable(self) -> bool:
        """A failed analysis a later attempt may complete (the job may raise to retry)."""
        return self.status == "failed" and self.reason in FAILED_RETRYABLE
