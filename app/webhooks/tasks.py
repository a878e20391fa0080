"""Background work of webhooks: one delivery attempt per WEBHOOK_DELIVER job, and upkeep."""

from __future__ import annotations

import logging
import time
import uuid

from app.db import utcnow
from app.jobs.registry import JobContext, TaskContext
from app.webhooks import service, signing
from app.webhooks.delivery import deliver
from app.webhooks.models import DeliveryStatus

log = logging.getLogger("peerpitch.webhooks")


async def deliver_webhook(ctx: JobContext) -> None:
    """One attempt of a delivery: read it, POST it outside any transaction, record it (and
    schedule the next one). Idempotent enough for at-least-once: a rerun of the same job
    after its attempt was recorded finds the delivery no longer held by it."""
    delivery_id = uuid.UUID(ctx.payload["delivery_id"])
    org_id = uuid.UUID(ctx.payload["org_id"])
    async with ctx.sessionmaker.begin() as session:
        attempt = await service.begin_attempt(session, org_id, delivery_id, ctx.job_id)
    if attempt is None:
        return
    rules = service.egress(
        ctx.settings, ctx.services.webhook_resolver, ctx.services.webhook_connector
    )
    attempted_at = utcnow()
    headers = signing.headers(attempt.secrets, attempt.msg_id, int(time.time()), attempt.body)
    result = await deliver(
        attempt.url,
        attempt.body,
        headers,
        resolver=rules.resolver,
        connector=rules.connector,
        allow_loopback=rules.allow_loopback,
        require_https=rules.require_https,
        timeout_s=service.TIMEOUT_S,
    )
    async with ctx.sessionmaker.begin() as session:
        recorded = await service.finish_attempt(
            session, org_id, delivery_id, ctx.job_id, result, attempted_at
        )
    if recorded is not None and recorded.status != DeliveryStatus.succeeded:
        log.info(
            "webhook delivery %s attempt %d: %s",
            delivery_id,
            recorded.attempts,
            result.error or f"HTTP {result.status_code}",
        )


async def purge_deliveries(ctx: TaskContext) -> None:
    """Periodic: the delivery log keeps as long as events do (PEERPITCH_EVENT_RETENTION_DAYS)."""
    async with ctx.sessionmaker.begin() as session:
        purged = await service.purge_deliveries(session, ctx.settings.event_retention_days)
    if purged:
        log.info("dropped %d webhook deliveries past their retention", purged)


async def fail_stranded_deliveries(ctx: TaskContext) -> None:
    """Periodic: a delivery whose job died without recording its attempt fails."""
    async with ctx.sessionmaker.begin() as session:
        failed = await service.fail_stranded(session)
    if failed:
        log.warning("failed %d webhook deliveries whose job died", failed)
