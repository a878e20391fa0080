from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clips.models import Clip
from app.db import Base, TenantMixin, utcnow
from app.users.models import User


class Exemplar(TenantMixin, Base):
    """A clip marked as an exemplar of its stage: one row while it is marked.

    The statistics behind its score are refreshed by a periodic job (and when it is marked),
    so ranking the library and building a prep kit read one indexed column, not aggregates
    over every view and reaction.
    """

    __tablename__ = "exemplars"
    __label__ = "Exemplar"
    __table_args__ = (Index("ix_exemplars_org_score", "org_id", "score", "id"),)

    clip_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("clips.id", ondelete="CASCADE"), unique=True
    )
    note: Mapped[str] = mapped_column(Text, default="")
    marked_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Marked (or re-marked) by a coach or an admin.
    endorsed: Mapped[bool] = mapped_column(default=False)
    helpful_count: Mapped[int] = mapped_column(default=0)
    viewer_count: Mapped[int] = mapped_column(default=0)
    completion_rate: Mapped[float] = mapped_column(default=0.0)
    score: Mapped[float] = mapped_column(default=0.0)
    stats_at: Mapped[datetime | None]

    clip: Mapped[Clip] = relationship(lazy="raise")
    marked_by: Mapped[User | None] = relationship(lazy="raise")


class ExemplarAction(enum.StrEnum):
    marked = "marked"
    unmarked = "unmarked"


class ExemplarEvent(TenantMixin, Base):
    """Who marked or unmarked which clip, and when: the curation history."""

    __tablename__ = "exemplar_events"
    __table_args__ = (Index("ix_exemplar_events_clip", "clip_id", "created_at"),)

    clip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[ExemplarAction] = mapped_column(
        Enum(ExemplarAction, native_enum=False, length=16, validate_strings=True)
    )
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExemplarLink(TenantMixin, Base):
    """A manual link from a clip to an exemplar, chosen by its owner or a coach."""

    __tablename__ = "exemplar_links"
    __table_args__ = (UniqueConstraint("clip_id", "exemplar_clip_id"),)

    clip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    exemplar_clip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    created_by: Mapped[User | None] = relationship(lazy="raise")
