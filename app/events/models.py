from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, utcnow


class Event(IdMixin, Base):
    """One domain event, written in the transaction of its cause (the outbox).

    Written on every change of the product, so it carries only the indexes its readers
    need: (org_id, seq) for replay and the stream, and the primary key, whose uuid7 ids are
    time-ordered, for the retention sweep.
    """

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("org_id", "seq", name="uq_events_org_seq"),)

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # Strictly increasing per organization, in commit order: the row is written with it
    # just before the recording transaction commits (see service.record).
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The resource as the API shows it (no caller-specific fields, no signed URLs).
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Who may see it on the live stream: events about a clip follow the clip's visibility;
    # a notification's event goes to its recipient only. No foreign keys: events outlive
    # the rows they describe (clip.deleted, feedback.deleted).
    clip_id: Mapped[uuid.UUID | None]
    user_id: Mapped[uuid.UUID | None]


class EventSequence(Base):
    """The last ``seq`` handed out per organization; its row lock orders the events of
    concurrent transactions by commit."""

    __tablename__ = "event_sequences"

    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # How many hooks want this organization's events (enabled webhook endpoints): with none,
    # committing events costs nothing more than writing them.
    subscribers: Mapped[int] = mapped_column(default=0, server_default="0")
