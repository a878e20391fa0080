from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clips.models import Clip
from app.db import Base, TenantMixin, TimestampMixin, utcnow
from app.users.models import User

OPEN_ROOT = "parent_id IS NULL AND resolved_at IS NULL AND deleted_at IS NULL"


class Feedback(TenantMixin, TimestampMixin, Base):
    """A timestamped note on a clip. A thread is a root (``parent_id`` null) and its replies;
    replies always point at the root, so threads are one level deep and one query loads them."""

    __tablename__ = "feedback"
    __label__ = "Feedback"
    __table_args__ = (
        # A clip's threads in playback order (GET /v1/clips/{id}/feedback). Partial, because
        # PostgreSQL does not treat "parent_id IS NULL" as an equality that lets a wider
        # index's later columns give the order: with this one a page is an index range scan
        # that stops after 51 rows instead of sorting every thread of the clip.
        Index(
            "ix_feedback_clip_roots",
            "clip_id",
            "timestamp_ms",
            "created_at",
            "id",
            postgresql_where=text("parent_id IS NULL"),
            sqlite_where=text("parent_id IS NULL"),
        ),
        # A clip's unresolved threads, newest first (the prep kit's "my open feedback").
        Index(
            "ix_feedback_open_roots",
            "clip_id",
            "created_at",
            "id",
            postgresql_where=text(OPEN_ROOT),
            sqlite_where=text(OPEN_ROOT),
        ),
        # Everything on a clip (exemplar statistics; deleting a clip cascades through it).
        Index("ix_feedback_clip", "clip_id"),
        # The replies of a page of threads, in creation order.
        Index("ix_feedback_parent_created", "parent_id", "created_at", "id"),
        # Skill profile and prep kit: feedback by skill within an org.
        Index("ix_feedback_org_skill", "org_id", "skill"),
        # The prep kit's tips: the most helpful feedback first.
        Index("ix_feedback_org_helpful", "org_id", "helpful_count", "created_at"),
    )

    clip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("feedback.id", ondelete="CASCADE")
    )
    body: Mapped[str] = mapped_column(Text)
    timestamp_ms: Mapped[int]
    end_ms: Mapped[int | None]
    skill: Mapped[str | None] = mapped_column(String(64))
    annotation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    response_clip_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("clips.id", ondelete="SET NULL")
    )
    mentions: Mapped[list[str]] = mapped_column(JSON, default=list)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    edited_at: Mapped[datetime | None]
    # Kept in step with feedback_reactions by app.feedback.service.set_helpful, so ranking
    # by helpfulness reads an index instead of counting reactions.
    helpful_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # Set on a thread root deleted while it still has replies: a tombstone keeps them readable.
    deleted_at: Mapped[datetime | None]

    clip: Mapped[Clip] = relationship(foreign_keys=[clip_id], lazy="raise")
    author: Mapped[User] = relationship(foreign_keys=[author_id], lazy="raise")
    resolved_by: Mapped[User | None] = relationship(foreign_keys=[resolved_by_id], lazy="raise")

    @property
    def is_root(self) -> bool:
        return self.parent_id is None


class FeedbackReaction(TenantMixin, Base):
    """A "this was helpful" mark: one per user and feedback item."""

    __tablename__ = "feedback_reactions"
    __table_args__ = (UniqueConstraint("feedback_id", "user_id", "kind"),)

    feedback_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("feedback.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
