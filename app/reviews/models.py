from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clips.models import Clip
from app.db import Base, TenantMixin, TimestampMixin, utcnow
from app.users.models import User


class ReviewStatus(enum.StrEnum):
    pending = "pending"
    completed = "completed"
    declined = "declined"


class ReviewRequest(TenantMixin, TimestampMixin, Base):
    """A clip's owner (or a coach) asks one colleague for a scored review of that clip."""

    __tablename__ = "review_requests"
    __label__ = "Review request"
    __table_args__ = (
        # One pending request per clip and reviewer; enforced by the database so two racing
        # requests cannot both succeed.
        Index(
            "uq_review_requests_pending",
            "clip_id",
            "reviewer_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_review_requests_reviewer", "reviewer_id", "created_at", "id"),
        Index("ix_review_requests_requester", "requester_id", "created_at", "id"),
    )

    clip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    reviewer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[ReviewStatus] = mapped_column(
        Enum(ReviewStatus, native_enum=False, length=16, validate_strings=True)
    )
    message: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime | None]
    summary: Mapped[str] = mapped_column(Text, default="")
    decline_reason: Mapped[str] = mapped_column(Text, default="")
    responded_at: Mapped[datetime | None]

    clip: Mapped[Clip] = relationship(lazy="raise")
    requester: Mapped[User] = relationship(foreign_keys=[requester_id], lazy="raise")
    reviewer: Mapped[User] = relationship(foreign_keys=[reviewer_id], lazy="raise")
    scores: Mapped[list[ReviewScore]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ReviewScore.skill"
    )


class ReviewScore(TenantMixin, Base):
    """One rubric score of a completed review, denormalised with the reviewed rep, stage and
    time so the skill profile aggregates one narrow table."""

    __tablename__ = "review_scores"
    __table_args__ = (
        UniqueConstraint("review_request_id", "skill"),
        Index("ix_review_scores_subject", "subject_id", "stage", "skill", "scored_at"),
    )

    review_request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("review_requests.id", ondelete="CASCADE")
    )
    # The rep being scored: the reviewed clip's owner.
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(64))
    skill: Mapped[str] = mapped_column(String(64))
    score: Mapped[int]
    scored_at: Mapped[datetime] = mapped_column(default=utcnow)
