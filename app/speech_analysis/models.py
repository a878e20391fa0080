"""A clip's speech analysis, one row per clip: the latest result, for the media version it
was computed from (a newer version replaces it)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, TenantMixin, TimestampMixin


class SpeechStatus(enum.StrEnum):
    """What is stored; the API adds "pending" for a clip without a result yet."""

    ready = "ready"
    unavailable = "unavailable"  # nothing to analyse: no audio, silent, no speech
    failed = "failed"  # the analysis broke; the clip itself is unaffected


class ClipSpeech(TenantMixin, TimestampMixin, Base):
    __tablename__ = "clip_speech"
    __label__ = "Speech analysis"

    clip_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clips.id", ondelete="CASCADE"), unique=True
    )
    # clips.media["version"] analysed: a result for another version is stale.
    media_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[SpeechStatus] = mapped_column(
        Enum(SpeechStatus, native_enum=False, length=16, validate_strings=True)
    )
    # Why unavailable or failed (app.speech.models' reasons, or the job's own).
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    engine: Mapped[str] = mapped_column(String(16))
    confidence_class: Mapped[str | None] = mapped_column(String(8))
    # app.speech.SpeechResult as JSON without its transcript (None when the job failed
    # before analysing); the transcript is apart, read only by the transcript routes.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    transcript: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, deferred=True, deferred_raiseload=True
    )
    analyzed_at: Mapped[datetime]
