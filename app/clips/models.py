from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, TenantMixin, TimestampMixin
from app.users.models import User


class ClipKind(enum.StrEnum):
    pitch = "pitch"
    exemplar = "exemplar"
    feedback = "feedback"


class Visibility(enum.StrEnum):
    private = "private"
    org = "org"


class ClipStatus(enum.StrEnum):
    awaiting_upload = "awaiting_upload"
    processing = "processing"
    viewable = "viewable"
    ready = "ready"
    failed = "failed"


def _str_enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, validate_strings=True)


class Clip(TenantMixin, TimestampMixin, Base):
    __tablename__ = "clips"
    __label__ = "Clip"
    __table_args__ = (
        Index("ix_clips_org_created", "org_id", "created_at", "id"),
        Index("ix_clips_org_stage", "org_id", "stage"),
        # A person's clips, by stage (the prep kit's "my open feedback").
        Index("ix_clips_owner_stage", "owner_id", "stage"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[ClipKind] = mapped_column(_str_enum(ClipKind))
    # The stage's key: stable across renames of the stage's display name.
    stage: Mapped[str] = mapped_column(String(64))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    visibility: Mapped[Visibility] = mapped_column(_str_enum(Visibility))
    status: Mapped[ClipStatus] = mapped_column(_str_enum(ClipStatus))
    progress: Mapped[float] = mapped_column(default=0.0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None]
    width: Mapped[int | None]
    height: Mapped[int | None]
    is_exemplar: Mapped[bool] = mapped_column(default=False)
    # Unresolved feedback threads on this clip, kept by app.feedback.service: the prep kit
    # sums it per stage instead of counting a rep's feedback on every request.
    open_feedback_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # Facts from probing the source (set by the transcode job).
    fps: Mapped[float | None]
    has_audio: Mapped[bool | None]
    video_codec: Mapped[str | None] = mapped_column(String(32))
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    bitrate: Mapped[int | None] = mapped_column(BigInteger)
    # The published renditions (see app/clips/transcode.py), under media_root(): each update
    # names only files already stored, so a reader never sees a reference to a missing one.
    media: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    source_key: Mapped[str] = mapped_column(String(512))
    deleted_at: Mapped[datetime | None]

    owner: Mapped[User] = relationship(lazy="raise")

    @property
    def media_prefix(self) -> str:
        return clip_prefix(self.org_id, self.id)


def clip_prefix(org_id: uuid.UUID, clip_id: uuid.UUID) -> str:
    """Every object of a clip lives under this prefix, so purging is one prefix delete."""
    return f"orgs/{org_id}/clips/{clip_id}/"


def media_root(org_id: uuid.UUID, clip_id: uuid.UUID) -> str:
    """Where transcode attempts write their renditions, one folder per attempt."""
    return f"{clip_prefix(org_id, clip_id)}media/"
