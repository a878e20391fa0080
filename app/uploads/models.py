from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, TenantMixin, TimestampMixin


class UploadStatus(enum.StrEnum):
    active = "active"
    completed = "completed"
    aborted = "aborted"
    expired = "expired"


class Upload(TenantMixin, TimestampMixin, Base):
    """A resumable multipart upload of a clip's source file."""

    __tablename__ = "uploads"
    __label__ = "Upload"
    __table_args__ = (Index("ix_uploads_status_expires", "status", "expires_at"),)

    clip_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clips.id", ondelete="CASCADE"), index=True
    )
    storage_key: Mapped[str] = mapped_column(String(512))
    multipart_id: Mapped[str] = mapped_column(String(1024))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(BigInteger)
    part_count: Mapped[int]
    status: Mapped[UploadStatus] = mapped_column(
        Enum(UploadStatus, native_enum=False, length=16, validate_strings=True)
    )
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    def expected_part_size(self, number: int) -> int:
        if number < self.part_count:
            return self.part_size
        return self.size_bytes - self.part_size * (self.part_count - 1)
