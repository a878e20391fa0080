from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.events.types import MAX_TYPE_LENGTH
from app.webhooks.delivery import MAX_URL_LENGTH
from app.webhooks.models import (
    DeliveryStatus,
    DisabledReason,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)

MAX_PATTERNS = 50
Pattern = Annotated[str, Field(min_length=1, max_length=MAX_TYPE_LENGTH)]

_EVENTS_HELP = (
    'Event types or patterns to receive: `"*"`, `"clip.*"`, `"feedback.created"` '
    "(the catalog of GET /v1/events)."
)


def _unique_patterns(patterns: list[str] | None) -> list[str] | None:
    # Kept in the order given, without repeats.
    return None if patterns is None else list(dict.fromkeys(p.strip() for p in patterns))


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where deliveries are POSTed: https (http only outside production); "
        "its host must resolve to public addresses only.",
    )
    events: list[Pattern] = Field(min_length=1, max_length=MAX_PATTERNS, description=_EVENTS_HELP)
    description: str = Field(default="", max_length=500)
    enabled: bool = True

    _check_events = field_validator("events")(_unique_patterns)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    events: list[Pattern] | None = Field(
        default=None, min_length=1, max_length=MAX_PATTERNS, description=_EVENTS_HELP
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(
        default=None,
        description="false stops deliveries (pending ones fail); true re-enables an endpoint "
        "the system disabled.",
    )

    _check_events = field_validator("events")(_unique_patterns)


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: DisabledReason | None = Field(
        description="Why the system disabled it: `gone` (the receiver answered 410) or "
        "`failing` (a delivery failed on every retry). Null when enabled or disabled by an admin."
    )
    disabled_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then, deliveries are signed with the previous secret too "
        "(after a rotation)."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            events=list(endpoint.patterns),
            description=endpoint.description,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            disabled_at=endpoint.disabled_at,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64): shown only in this answer; keep it."
    )

    @classmethod
    def with_secret(cls, endpoint: WebhookEndpoint) -> WebhookWithSecret:
        return cls(**WebhookOut.of(endpoint).model_dump(), secret=endpoint.secret)


class DeliveryOut(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID = Field(description="Sent as `webhook-id`; the same on every attempt.")
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None = Field(
        description="Why the last attempt failed without an answer (e.g. `connect_error: ...`, "
        "`webhook_url_not_allowed: ...`), or why the delivery stopped (`webhook_disabled`)."
    )
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When the next retry is due.")
    created_at: datetime

    @classmethod
    def of(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=d.id,
            webhook_id=d.webhook_id,
            event_id=d.event_id,
            event_type=d.event_type,
            status=d.status,
            attempts=d.attempts,
            last_status_code=d.last_status_code,
            last_latency_ms=d.last_latency_ms,
            last_error=d.last_error,
            last_attempt_at=d.last_attempt_at,
            next_attempt_at=d.next_attempt_at,
            created_at=d.created_at,
        )


class AttemptOut(BaseModel):
    number: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str = Field(description="The start of the receiver's answer (1 KiB).")

    @classmethod
    def of(cls, a: WebhookDeliveryAttempt) -> AttemptOut:
        return cls(
            number=a.number,
            attempted_at=a.attempted_at,
            status_code=a.status_code,
            latency_ms=a.latency_ms,
            error=a.error,
            response_excerpt=a.response_excerpt,
        )


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any] | None = Field(
        description="The body sent: the event as GET /v1/events shows it (null until the "
        "first attempt)."
    )
    attempt_log: list[AttemptOut]

    @classmethod
    def detail(
        cls, d: WebhookDelivery, attempts: Sequence[WebhookDeliveryAttempt]
    ) -> DeliveryDetail:
        return cls(
            **DeliveryOut.of(d).model_dump(),
            payload=None if d.body is None else json.loads(d.body),
            attempt_log=[AttemptOut.of(a) for a in attempts],
        )
