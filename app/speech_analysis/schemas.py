"""What the speech routes answer. Metrics, flags and talk-track results are app.speech's own
models, served as stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.speech import EngineName, Metrics, Segment, TalkTrackResult
from app.speech.models import ConfidenceClass, Flag

SpeechState = Literal["pending", "ready", "unavailable", "failed"]


class SpeechOut(BaseModel):
    clip_id: uuid.UUID
    status: SpeechState = Field(
        description="`pending`: not analysed yet (the clip is still processing, or its "
        "analysis is queued or running). `ready`: metrics (and a transcript unless the engine "
        "is `none`). `unavailable`: nothing to analyse (`reason`: `no_audio_stream`, `silent`, "
        "`no_speech`). `failed`: the analysis broke (`reason`); the clip itself is unaffected."
    )
    reason: str | None = Field(description="Why unavailable or failed; null otherwise.")
    message: str | None
    engine: EngineName | None = Field(
        description="The transcription engine used (null while pending). `none`: no transcript."
    )
    confidence_class: ConfidenceClass | None = Field(
        description="How far to trust the transcript and the figures drawn from it: `low` "
        "(pocketsphinx: show it as a rough draft) or `high` (whisper); null without one."
    )
    language: str | None
    duration_ms: int | None
    metrics: Metrics | None = Field(
        description="`delivery` (from voice activity, whatever the engine), `loudness` (EBU R "
        "128) and `transcript` (words and fillers per minute; null without a transcript)."
    )
    flags: list[Flag] = Field(
        description="Delivery problems past the organization's thresholds; `too_slow`, "
        "`too_fast` and `many_fillers` only from a high-confidence transcript."
    )
    talk_track: TalkTrackResult | None = Field(
        description="The stage's talk-track phrases (each skill's `phrases_to_use` and "
        "`phrases_to_avoid` when the clip was analysed): which were said, and where. Null "
        "without a transcript or without phrases."
    )
    has_transcript: bool = Field(description="GET …/transcript and …/transcript.vtt answer 200.")
    analyzed_at: datetime | None


class TranscriptOut(BaseModel):
    clip_id: uuid.UUID
    engine: EngineName
    confidence_class: ConfidenceClass
    language: str
    segments: list[Segment] = Field(
        description="Caption-sized segments in order, each with its words; times are ms from "
        "the start of the clip (the playback timeline), confidences 0..1 when the engine "
        "gives them."
    )


# --- delivery figures in the skill profile and the prep kit ----------------------------------

_FROM_TRANSCRIPT = "Null when the analysis has no transcript (engine `none`)."


class DeliveryPoint(BaseModel):
    """One analysed pitch's delivery, from its current (ready) speech analysis."""

    clip_id: uuid.UUID
    title: str
    recorded_at: datetime = Field(description="When the pitch was created.")
    analyzed_at: datetime
    confidence_class: ConfidenceClass | None = Field(
        description="The transcript's (`low`: pocketsphinx, read its rates as rough); null "
        "without a transcript."
    )
    words_per_minute: float | None = Field(
        description=f"Words per minute of speaking time. {_FROM_TRANSCRIPT}"
    )
    fillers_per_minute: float | None = Field(description=_FROM_TRANSCRIPT)
    pause_count: int = Field(description="Pauses of at least the organization's minimum (1 s).")
    longest_pause_ms: int
    speaking_ratio: float = Field(description="Speaking time ÷ duration, 0..1.")


class DeliveryTrend(BaseModel):
    """One figure over a rep's analysed pitches of a stage (those that have it)."""

    latest: float | None = Field(description="The newest pitch's value.")
    recent_mean: float | None = Field(description="Mean of the newest 3 pitches' values.")
    previous_mean: float | None = Field(description="Mean of the 3 values before those.")
    change: float | None = Field(description="`recent_mean` minus `previous_mean`.")
    direction: str | None = Field(
        description="`rising`, `falling` or `steady` (a change smaller than the figure's "
        "threshold: 10 words/min, 1 filler/min, 1 pause, 500 ms, 0.05 speaking ratio); null "
        "with fewer than 4 values. Whether rising is better depends on the figure."
    )


class DeliveryTrends(BaseModel):
    words_per_minute: DeliveryTrend
    fillers_per_minute: DeliveryTrend
    pause_count: DeliveryTrend
    longest_pause_ms: DeliveryTrend
    speaking_ratio: DeliveryTrend


class StageDelivery(BaseModel):
    """A rep's delivery at one stage, from their analysed pitches."""

    pitches: int = Field(description="The rep's pitches of the stage with a ready analysis.")
    points: list[DeliveryPoint] = Field(
        description="The newest 20 of them, oldest first (by `recorded_at`)."
    )
    trends: DeliveryTrends


class DeliveryMedian(BaseModel):
    """The median of each figure over the analysed exemplars that have it."""

    words_per_minute: float | None = Field(
        description="Over the exemplars with a transcript; null if none has one."
    )
    fillers_per_minute: float | None
    pause_count: float | None
    longest_pause_ms: int | None
    speaking_ratio: float | None


class PrepDelivery(BaseModel):
    mine: DeliveryPoint | None = Field(
        description="The caller's newest analysed pitch of the stage; null if none."
    )
    exemplar_median: DeliveryMedian | None = Field(
        description="Medians over the stage's exemplars the caller may play that have a "
        "ready analysis (all of them, not only those in the kit); null if none."
    )
    exemplars_analyzed: int = Field(description="How many exemplars the medians are over.")
