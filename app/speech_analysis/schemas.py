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
