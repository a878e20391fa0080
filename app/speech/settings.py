"""What an analysis may be tuned with: engine, thresholds of the flags, filler words.

One frozen model so the job passes a single value around (and the ASR child process gets it
as JSON). `app.config.Settings` maps its `PEERPITCH_*` fields onto it; defaults here are the
product defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EngineName = Literal["pocketsphinx", "whisper", "none"]

# Words and phrases counted as fillers, per language (matched on normalised words, longest
# first, so "you know" is one filler and never also "know"). Words that are often not fillers
# ("so", "right", "well") are left out: a false alarm costs the rep's trust in every metric.
DEFAULT_FILLERS: dict[str, tuple[str, ...]] = {
    "en": (
        "um",
        "umm",
        "uh",
        "uhm",
        "erm",
        "er",
        "ah",
        "hmm",
        "like",
        "you know",
        "basically",
        "actually",
        "literally",
        "i mean",
        "sort of",
        "kind of",
    ),
}


class SpeechSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Transcription engine and, for whisper, the operator's CTranslate2 model folder (never
    # downloaded). "none" still measures delivery and loudness.
    engine: EngineName = "pocketsphinx"
    model_dir: Path | None = None
    # Spoken language (ISO 639-1). pocketsphinx ships US English only.
    language: str = Field(default="en", min_length=2, max_length=8)
    # faster-whisper: CTranslate2 compute type and CPU threads (0: CTranslate2's default, 4).
    whisper_compute_type: str = "int8"
    whisper_cpu_threads: int = Field(default=0, ge=0)
    whisper_beam_size: int = Field(default=5, ge=1, le=10)
    # The ASR process may run this many times the audio duration, plus a base, before it is
    # killed (pocketsphinx needs about 0.3x on one core of the reference machine).
    asr_timeout_factor: float = Field(default=3.0, gt=0)
    asr_timeout_base_s: float = Field(default=60.0, gt=0)

    # Voice activity: a 32 ms window is speech from `vad_threshold` on and stays speech until
    # the probability falls below `vad_threshold - 0.15` (silero's hysteresis).
    vad_threshold: float = Field(default=0.5, gt=0.15, lt=1)
    # Silences shorter than this are part of speaking (between words, breaths).
    min_silence_ms: int = Field(default=300, ge=32)
    # Speech bursts shorter than this are noise (a cough, a click).
    min_speech_ms: int = Field(default=150, ge=0)
    # A pause is a silence between two words of at least this long.
    pause_min_ms: int = Field(default=1000, ge=100)
    # Speech regions given to the recogniser are padded by this much on each side.
    asr_pad_ms: int = Field(default=200, ge=0, le=1000)

    # Unavailable: less speech than this in the whole recording ("no_speech" or "silent").
    min_total_speech_ms: int = Field(default=500, ge=0)
    # Integrated loudness at or below this is a silent recording (-70 LUFS: digital silence).
    silent_lufs: float = -60.0

    # Flags
    too_quiet_lufs: float = -30.0  # integrated loudness below this: too_quiet
    clipping_true_peak_dbtp: float = 0.0  # true peak at or above this: clipping
    long_pause_ms: int = Field(default=3000, ge=100)  # any pause this long: long_pauses
    slow_start_ms: int = Field(default=5000, ge=0)  # first word later than this: slow_start
    # Raised from a high-confidence transcript only (a low-confidence one would cry wolf).
    too_slow_wpm: float = Field(default=110.0, gt=0)
    too_fast_wpm: float = Field(default=180.0, gt=0)
    many_fillers_per_min: float = Field(default=5.0, gt=0)

    filler_words: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(DEFAULT_FILLERS))

    # Captions: one cue holds at most this long and this many characters, and a silence this
    # long between words starts a new cue.
    cue_max_ms: int = Field(default=6000, ge=1000)
    cue_max_chars: int = Field(default=84, ge=10)
    cue_split_gap_ms: int = Field(default=700, ge=100)

    @property
    def vad_neg_threshold(self) -> float:
        return self.vad_threshold - 0.15

    def fillers(self) -> tuple[str, ...]:
        """The filler list of the configured language (its base language as fallback)."""
        lang = self.language.lower()
        found = self.filler_words.get(lang) or self.filler_words.get(lang.split("-")[0])
        return found or ()
