from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, TenantMixin, utcnow
from app.users.models import User


class NotificationKind(enum.StrEnum):
    feedback_on_my_clip = "feedback_on_my_clip"
    feedback_reply = "feedback_reply"
    mention = "mention"
    feedback_resolved = "feedback_resolved"
    review_requested = "review_requested"
    review_completed = "review_completed"
    review_declined = "review_declined"
    # A pitch finished processing; data lists the exemplars it is linked to.
    pitch_ready = "pitch_ready"
    # A pitch's speech was analysed (ready, or unavailable: no audio, silent, no speech);
    # data holds the status, flags and headline delivery figures.
    pitch_analyzed = "pitch_analyzed"
    # A pitch could not be processed; data holds the error's code and message.
    pitch_failed = "pitch_failed"
    # An upload was not completed in time; its clip may start a new one.
    upload_expired = "upload_expired"
    # To the organization's admins: a webhook endpoint was disabled (410, or failures past
    # the last retry); data holds the endpoint's id, url and the reason.
    webhook_disabled = "webhook_disabled"


class Notification(TenantMixin, Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_created", "user_id", "created_at", "id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[NotificationKind] = mapped_column(
        Enum(NotificationKind, native_enum=False, length=32, validate_strings=True)
    )
    # Who caused it (null for the system, e.g. a finished transcode).
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    clip_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    feedback_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("feedback.id", ondelete="CASCADE")
    )
    review_request_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("review_requests.id", ondelete="CASCADE")
    )
    # A short, self-contained summary for the client to render without more requests.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    read_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id], lazy="raise")
