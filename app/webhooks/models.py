"""Webhook endpoints of an organization, and the deliveries of events to them."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, TenantMixin, TimestampMixin, utcnow


class DisabledReason(enum.StrEnum):
    """Why the system turned an endpoint off (an admin's own PATCH leaves no reason)."""

    # The receiver answered 410 Gone.
    gone = "gone"
    # A delivery failed on every attempt of its schedule, and nothing recorded after it
    # was delivered either.
    failing = "failing"


class DeliveryStatus(enum.StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class WebhookEndpoint(TenantMixin, TimestampMixin, Base):
    """An integrator's URL and the event types (patterns) it subscribes to.

    The secret signs deliveries (HMAC), so it is kept as is, never hashed; it is shown
    once, in the answer that creates or rotates it. After a rotation the previous secret
    also signs until ``previous_secret_expires_at``.
    """

    __tablename__ = "webhook_endpoints"
    __label__ = "Webhook"

    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    # What it subscribes to (the API's ``events``): types and patterns of app.events.types,
    # e.g. "*", "clip.*", "feedback.created".
    patterns: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None]
    disabled_reason: Mapped[DisabledReason | None] = mapped_column(
        Enum(DisabledReason, native_enum=False, length=16, validate_strings=True)
    )
    disabled_at: Mapped[datetime | None]


class WebhookDelivery(TenantMixin, Base):
    """One event for one endpoint: the body is written once, so every attempt sends the same
    bytes under the same ``webhook-id`` (the event's id). An event's ``seq`` is given as its
    transaction commits, after the fan-out: the first attempt writes the body from the stored
    event (a webhook.test's is written at once).

    ``job_id`` is the one job allowed to make the next attempt: rescheduling or a manual
    retry replaces it, and a job that finds another id here has nothing to do.
    """

    __tablename__ = "webhook_deliveries"
    __label__ = "Delivery"
    __table_args__ = (
        # The delivery log of an endpoint, newest first.
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at", "id"),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # No foreign key: events expire before their deliveries' log does, and webhook.test
    # events are never stored.
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(64))
    # The exact request body (UTF-8 JSON), as signed and sent on every attempt; None until
    # the first attempt.
    body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=16, validate_strings=True),
        default=DeliveryStatus.pending,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    # The position in the retry schedule of the retry that follows a failure of the next
    # attempt; None: that attempt is the last (test events, manual retries of finished ones).
    retry_step: Mapped[int | None]
    job_id: Mapped[uuid.UUID | None]
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_latency_ms: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDeliveryAttempt(IdMixin, Base):
    """One request of a delivery, as the receiver answered it (the delivery log's detail)."""

    __tablename__ = "webhook_delivery_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    latency_ms: Mapped[int]
    error: Mapped[str | None] = mapped_column(String(500))
    # The start of the receiver's answer (at most 1 KiB), for debugging.
    response_excerpt: Mapped[str] = mapped_column(Text, default="")
