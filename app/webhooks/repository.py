"""Webhook endpoints and deliveries of one organization."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, func, select, update

from app.tenancy import TenantRepository
from app.webhooks.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)


class WebhookRepository(TenantRepository[WebhookEndpoint]):
    model = WebhookEndpoint

    async def subscriptions(self) -> list[tuple[uuid.UUID, list[str]]]:
        """The enabled endpoints and their patterns: one query on the org_id index (it runs
        in every transaction that records an event)."""
        rows = await self.session.execute(
            self.select(WebhookEndpoint.id, WebhookEndpoint.patterns).where(
                WebhookEndpoint.enabled.is_(True)
            )
        )
        return [(row.id, list(row.patterns)) for row in rows]

    async def count(self) -> int:
        return int(await self.session.scalar(self.select(func.count(WebhookEndpoint.id))) or 0)


class DeliveryRepository(TenantRepository[WebhookDelivery]):
    model = WebhookDelivery

    def of_webhook(self, webhook_id: uuid.UUID, status: DeliveryStatus | None) -> Select[Any]:
        stmt = self.select().where(WebhookDelivery.webhook_id == webhook_id)
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        return stmt

    async def of_webhook_by_id(
        self, webhook_id: uuid.UUID, delivery_id: uuid.UUID
    ) -> WebhookDelivery | None:
        found: WebhookDelivery | None = await self.session.scalar(
            self.select().where(
                WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id
            )
        )
        return found

    async def with_endpoint(
        self, delivery_id: uuid.UUID, *, lock: bool = False
    ) -> tuple[WebhookDelivery, WebhookEndpoint] | None:
        """A delivery and its endpoint in one query (locked on PostgreSQL when ``lock``)."""
        stmt = (
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.webhook_id)
            .where(self.where_in_org(WebhookEndpoint), WebhookDelivery.id == delivery_id)
        )
        if lock and self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=WebhookDelivery)
        row = (await self.session.execute(stmt)).first()
        return None if row is None else (row[0], row[1])

    async def attempts(self, delivery_id: uuid.UUID) -> Sequence[WebhookDeliveryAttempt]:
        """The attempts of a delivery of this organization, oldest first."""
        return (
            await self.session.scalars(
                select(WebhookDeliveryAttempt)
                .join(WebhookDelivery, WebhookDelivery.id == WebhookDeliveryAttempt.delivery_id)
                .where(self.where_in_org(), WebhookDeliveryAttempt.delivery_id == delivery_id)
                .order_by(WebhookDeliveryAttempt.number)
            )
        ).all()

    async def fail_pending(self, webhook_id: uuid.UUID, error: str, now: datetime) -> int:
        """End every pending delivery of an endpoint (it was disabled); their jobs then find
        no work."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                self.where_in_org(),
                WebhookDelivery.webhook_id == webhook_id,
                WebhookDelivery.status == DeliveryStatus.pending,
            )
            .values(
                status=DeliveryStatus.failed,
                last_error=error,
                job_id=None,
                next_attempt_at=None,
                updated_at=now,
            )
            .execution_options(synchronize_session="fetch")
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def delivered_since(self, webhook_id: uuid.UUID, since: datetime) -> bool:
        """Whether a delivery created at or after ``since`` reached the endpoint."""
        found = await self.session.scalar(
            select(
                exists().where(
                    self.where_in_org(),
                    WebhookDelivery.webhook_id == webhook_id,
                    WebhookDelivery.created_at >= since,
                    WebhookDelivery.status == DeliveryStatus.succeeded,
                )
            )
        )
        return bool(found)
