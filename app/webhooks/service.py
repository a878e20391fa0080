"""Webhooks: endpoints (admins manage them), the fan-out of recorded events into deliveries,
and the bookkeeping of each delivery attempt (the request itself is made by tasks.py).

Delivery is at least once: the fan-out writes one delivery per matching enabled endpoint in
the transaction that records the event, with a WEBHOOK_DELIVER job; each attempt POSTs the
same stored body under the same ``webhook-id`` (the event's id), signed anew with its own
``webhook-timestamp``. A failed attempt schedules the next one itself (RETRY_SCHEDULE_S, with
jitter); 410 Gone, or a delivery failing past its last retry while nothing later reached the
endpoint, disables the endpoint and tells the organization's admins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpcore
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from app.config import Settings
from app.db import end_read_transaction, utcnow, uuid7
from app.errors import Conflict, NotFound, Unprocessable
from app.events import service as events
from app.events.models import Event
from app.events.types import WEBHOOK_TEST, is_valid_pattern, matches
from app.jobs.kinds import WEBHOOK_DELIVER
from app.jobs.models import Job, JobStatus
from app.jobs.service import enqueue
from app.notifications.models import NotificationKind
from app.notifications.service import Cause, notify_admins
from app.pagination import PageParams, SortKey, paginate
from app.tenancy import Principal
from app.webhooks import signing
from app.webhooks.delivery import (
    REFUSED_CODE,
    DeliveryResult,
    LoopbackOnlyBackend,
    Resolver,
    UrlNotAllowed,
    check_destination,
    loopback_resolver,
)
from app.webhooks.models import (
    DeliveryStatus,
    DisabledReason,
    WebhookDelivery,
    WebhookDeliveryAttempt,
    WebhookEndpoint,
)
from app.webhooks.repository import DeliveryRepository, WebhookRepository
from app.webhooks.schemas import WebhookCreate, WebhookUpdate

# Seconds from a failed attempt to the next one: 8 attempts over about 28 hours. Tests
# shorten it (a module constant, read at each failure).
RETRY_SCHEDULE_S: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
# Each delay is spread by up to ±10 % so that deliveries failing together do not retry together.
RETRY_JITTER = 0.1
TIMEOUT_S = 10.0
# After a rotation, deliveries carry signatures with both secrets for this long.
ROTATION_OVERLAP = timedelta(hours=24)
# The fan-out runs in every transaction that records an event: a bounded list keeps it cheap.
MAX_WEBHOOKS_PER_ORG = 20
# How long resolving a URL's host may take when an endpoint is created or its URL changed.
RESOLVE_TIMEOUT_S = 5.0
# Ahead of the default (100): deliveries are short, and receivers wait for them.
JOB_PRIORITY = 50
# Runs of one attempt's job (a worker that died mid-attempt); the schedule is the handler's.
JOB_MAX_ATTEMPTS = 3
DISABLED_ERROR = "webhook_disabled"
TEST_MESSAGE = "A test event from peerpitch: this endpoint receives deliveries."

_ORDER = (
    SortKey(WebhookEndpoint.created_at, descending=True),
    SortKey(WebhookEndpoint.id, descending=True),
)
_DELIVERY_ORDER = (
    SortKey(WebhookDelivery.created_at, descending=True),
    SortKey(WebhookDelivery.id, descending=True),
)


# --- where deliveries may go -------------------------------------------------------------------


@dataclass(frozen=True)
class Egress:
    """How requests to receivers resolve and connect, from settings and injected services."""

    resolver: Resolver | None
    connector: httpcore.AsyncNetworkBackend | None
    allow_loopback: bool
    require_https: bool


def egress(
    settings: Settings,
    resolver: Resolver | None = None,
    connector: httpcore.AsyncNetworkBackend | None = None,
) -> Egress:
    """The rules for this deployment. ``PEERPITCH_WEBHOOK_EGRESS=loopback`` (test servers
    driven by outside tools, e.g. the schema fuzzer) answers every name with 127.0.0.1 and
    refuses to connect anywhere else, so no request or DNS query leaves the host."""
    sandboxed = settings.webhook_egress == "loopback"
    if sandboxed:
        resolver = resolver or loopback_resolver
        connector = connector or LoopbackOnlyBackend()
    return Egress(
        resolver=resolver,
        connector=connector,
        allow_loopback=settings.webhook_allow_loopback or sandboxed,
        require_https=settings.is_production,
    )


async def _check_url(session: AsyncSession, url: str, rules: Egress) -> None:
    """Refuse a destination (syntax, scheme, addresses its host resolves to) with 422
    ``webhook_url_not_allowed``. Resolution can take seconds, so the caller's transaction is
    ended first when it has only read (the caller re-reads nothing: it only writes after)."""
    with contextlib.suppress(RuntimeError):  # it wrote already: resolve inside it
        await end_read_transaction(session)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            await check_destination(
                url,
                resolver=rules.resolver,
                allow_loopback=rules.allow_loopback,
                require_https=rules.require_https,
            )
    except UrlNotAllowed as exc:
        reason = exc.reason
    except TimeoutError:
        reason = "host does not resolve (timeout)"
    else:
        return
    raise Unprocessable(
        f"This URL is not allowed as a webhook destination: {reason}.",
        code=REFUSED_CODE,
        details={"reason": reason},
    )


def _check_patterns(patterns: Sequence[str]) -> None:
    bad = [p for p in patterns if not is_valid_pattern(p)]
    if bad:
        raise Unprocessable(
            f"Unknown event types: {', '.join(bad)}.", code="unknown_event_type", details=bad
        )


# --- the subscriptions of a transaction --------------------------------------------------------
# The fan-out runs for every recorded event; a transaction that records several (a feedback
# post and its notifications) reads its organization's enabled endpoints once. The memo lives
# in session.info until the transaction ends; writes to endpoints in the session drop it.

_MEMO = "peerpitch.webhooks.subscriptions"
Subscriptions = list[tuple[uuid.UUID, list[str]]]


@event.listens_for(Session, "after_transaction_end")
def _end_of_transaction(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_MEMO, None)


def _forget(session: AsyncSession, org_id: uuid.UUID) -> None:
    memo: dict[uuid.UUID, Subscriptions] | None = session.sync_session.info.get(_MEMO)
    if memo is not None:
        memo.pop(org_id, None)


async def _endpoints_changed(session: AsyncSession, org_id: uuid.UUID) -> None:
    """After any change to an organization's endpoints, in its transaction: drop the memo and
    tell the outbox how many enabled endpoints want the events (with none, recording an
    event never looks for endpoints)."""
    _forget(session, org_id)
    await session.flush()
    count = await session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.org_id == org_id, WebhookEndpoint.enabled.is_(True))
    )
    await events.set_subscribers(session, org_id, int(count or 0))


async def _subscriptions(session: AsyncSession, org_id: uuid.UUID) -> Subscriptions:
    memo: dict[uuid.UUID, Subscriptions] = session.sync_session.info.setdefault(_MEMO, {})
    found = memo.get(org_id)
    if found is None:
        found = memo[org_id] = await WebhookRepository(session, org_id).subscriptions()
    return found


def _body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


async def _new_delivery(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    webhook_id: uuid.UUID,
    event_id: uuid.UUID,
    event_type: str,
    body: str | None,
    retry_step: int | None,
) -> WebhookDelivery:
    delivery_id = uuid7()
    job = await _enqueue_attempt(session, org_id, delivery_id)
    now = utcnow()
    delivery = WebhookDelivery(
        id=delivery_id,
        org_id=org_id,
        webhook_id=webhook_id,
        event_id=event_id,
        event_type=event_type,
        body=body,
        status=DeliveryStatus.pending,
        attempts=0,
        retry_step=retry_step,
        job_id=job.id,
        next_attempt_at=job.run_at,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    return delivery


async def _enqueue_attempt(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID, run_at: datetime | None = None
) -> Job:
    return await enqueue(
        session,
        WEBHOOK_DELIVER,
        {"delivery_id": str(delivery_id), "org_id": str(org_id)},
        priority=JOB_PRIORITY,
        run_at=run_at,
        max_attempts=JOB_MAX_ATTEMPTS,
    )


async def fan_out(session: AsyncSession, recorded: Event) -> None:
    """``events.on_recorded`` hook: a delivery (and its job) per enabled endpoint of the
    organization subscribed to the event's type, in the event's transaction."""
    subscriptions = await _subscriptions(session, recorded.org_id)
    targets = [wid for wid, patterns in subscriptions if matches(recorded.type, patterns)]
    for webhook_id in targets:
        # The body waits for the first attempt: the event's seq is not known before commit.
        await _new_delivery(
            session,
            org_id=recorded.org_id,
            webhook_id=webhook_id,
            event_id=recorded.id,
            event_type=recorded.type,
            body=None,
            retry_step=0,
        )


# --- endpoints ---------------------------------------------------------------------------------


async def create_webhook(
    session: AsyncSession, rules: Egress, principal: Principal, data: WebhookCreate
) -> WebhookEndpoint:
    _check_patterns(data.events)
    if await WebhookRepository.of(session, principal).count() >= MAX_WEBHOOKS_PER_ORG:
        raise Conflict(
            f"An organization has at most {MAX_WEBHOOKS_PER_ORG} webhooks; delete one first.",
            code="webhook_limit_reached",
        )
    await _check_url(session, data.url, rules)
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=uuid7(),
        org_id=principal.org_id,
        url=data.url,
        description=data.description,
        patterns=list(data.events),
        enabled=data.enabled,
        secret=signing.new_secret(),
        disabled_at=None if data.enabled else now,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    await _endpoints_changed(session, principal.org_id)
    return endpoint


async def list_webhooks(
    session: AsyncSession, principal: Principal, page: PageParams
) -> tuple[list[WebhookEndpoint], str | None]:
    return await paginate(session, WebhookRepository.of(session, principal).select(), _ORDER, page)


async def get_webhook(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID
) -> WebhookEndpoint:
    return await WebhookRepository.of(session, principal).get(webhook_id)


async def update_webhook(
    session: AsyncSession,
    rules: Egress,
    principal: Principal,
    webhook_id: uuid.UUID,
    data: WebhookUpdate,
) -> WebhookEndpoint:
    endpoint = await get_webhook(session, principal, webhook_id)
    if data.events is not None:
        _check_patterns(data.events)
    if data.url is not None and data.url != endpoint.url:
        await _check_url(session, data.url, rules)
        endpoint.url = data.url
    if data.events is not None:
        endpoint.patterns = list(data.events)
    if data.description is not None:
        endpoint.description = data.description
    now = utcnow()
    if data.enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_reason = None
        endpoint.disabled_at = None
    elif data.enabled is False and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_reason = None
        endpoint.disabled_at = now
        await DeliveryRepository.of(session, principal).fail_pending(
            endpoint.id, DISABLED_ERROR, now
        )
    endpoint.updated_at = now
    await session.flush()
    await _endpoints_changed(session, principal.org_id)
    return endpoint


async def delete_webhook(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID
) -> None:
    """The endpoint and its delivery log go; jobs of its deliveries find nothing to do."""
    endpoint = await get_webhook(session, principal, webhook_id)
    await session.delete(endpoint)
    await session.flush()
    await _endpoints_changed(session, principal.org_id)


async def rotate_secret(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID
) -> WebhookEndpoint:
    """A new secret now; the current one keeps signing too for ROTATION_OVERLAP (a rotation
    within the overlap drops the oldest)."""
    endpoint = await get_webhook(session, principal, webhook_id)
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret = signing.new_secret()
    endpoint.updated_at = now
    await session.flush()
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets an attempt at ``now`` is signed with: the current one first."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


# --- deliveries --------------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    webhook_id: uuid.UUID,
    status: DeliveryStatus | None,
    page: PageParams,
) -> tuple[list[WebhookDelivery], str | None]:
    await get_webhook(session, principal, webhook_id)
    stmt = DeliveryRepository.of(session, principal).of_webhook(webhook_id, status)
    return await paginate(session, stmt, _DELIVERY_ORDER, page)


async def _delivery(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> tuple[WebhookEndpoint, WebhookDelivery]:
    endpoint = await get_webhook(session, principal, webhook_id)
    found = await DeliveryRepository.of(session, principal).of_webhook_by_id(
        webhook_id, delivery_id
    )
    if found is None:
        raise NotFound("Delivery not found.")
    return endpoint, found


async def get_delivery(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, Sequence[WebhookDeliveryAttempt]]:
    _, found = await _delivery(session, principal, webhook_id, delivery_id)
    attempts = await DeliveryRepository.of(session, principal).attempts(found.id)
    return found, attempts


def _ensure_enabled(endpoint: WebhookEndpoint) -> None:
    if not endpoint.enabled:
        raise Conflict(
            "The webhook is disabled; enable it with PATCH first.", code="webhook_disabled"
        )


async def retry_delivery(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """An attempt now, with the same body and webhook-id. A pending delivery keeps its
    schedule after it; a finished one gets this one attempt."""
    endpoint, found = await _delivery(session, principal, webhook_id, delivery_id)
    _ensure_enabled(endpoint)
    job = await _enqueue_attempt(session, principal.org_id, found.id)
    if found.status != DeliveryStatus.pending:
        found.retry_step = None
    found.status = DeliveryStatus.pending
    found.job_id = job.id
    found.next_attempt_at = job.run_at
    found.updated_at = utcnow()
    await session.flush()
    return found


async def send_test(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID
) -> WebhookDelivery:
    """A ``webhook.test`` event for this endpoint only: never stored as an event (its seq
    is 0, outside the organization's sequence) and attempted once."""
    endpoint = await get_webhook(session, principal, webhook_id)
    _ensure_enabled(endpoint)
    event_id = uuid7()
    payload = {
        "id": str(event_id),
        "type": WEBHOOK_TEST,
        "seq": 0,
        "occurred_at": utcnow().isoformat().replace("+00:00", "Z"),
        "org_id": str(principal.org_id),
        "data": {"webhook_id": str(endpoint.id), "message": TEST_MESSAGE},
    }
    delivery = await _new_delivery(
        session,
        org_id=principal.org_id,
        webhook_id=endpoint.id,
        event_id=event_id,
        event_type=WEBHOOK_TEST,
        body=_body(payload),
        retry_step=None,
    )
    await session.flush()
    return delivery


# --- attempts (the WEBHOOK_DELIVER handler, app.webhooks.tasks) --------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one request needs, read before it is made (outside any transaction)."""

    url: str
    body: bytes
    msg_id: str
    secrets: list[str]


async def begin_attempt(
    session: AsyncSession, org_id: uuid.UUID, delivery_id: uuid.UUID, job_id: uuid.UUID
) -> Attempt | None:
    """The attempt this job is to make, or None: the delivery is gone, finished, or another
    job holds its next attempt (a manual retry, a reschedule)."""
    found = await DeliveryRepository(session, org_id).with_endpoint(delivery_id)
    if found is None:
        return None
    delivery, endpoint = found
    if delivery.status != DeliveryStatus.pending or delivery.job_id != job_id:
        return None
    if not endpoint.enabled:  # disabling fails pending deliveries; this one slipped between
        _stop(delivery, DISABLED_ERROR)
        return None
    if delivery.body is None:
        # Written once, from the stored event (with its seq): every attempt sends these bytes.
        stored = await session.get(Event, delivery.event_id)
        if stored is None:
            _stop(delivery, "event_expired")
            return None
        delivery.body = _body(events.payload(stored))
    return Attempt(
        url=endpoint.url,
        body=delivery.body.encode(),
        msg_id=str(delivery.event_id),
        secrets=signing_secrets(endpoint, utcnow()),
    )


def _stop(delivery: WebhookDelivery, error: str) -> None:
    delivery.status = DeliveryStatus.failed
    delivery.last_error = error
    delivery.job_id = None
    delivery.next_attempt_at = None
    delivery.updated_at = utcnow()


def retry_delay_s(step: int) -> float:
    base = RETRY_SCHEDULE_S[step]
    return base * (1.0 + RETRY_JITTER * (2.0 * random.random() - 1.0))


def _text(value: str | None, limit: int | None = None) -> str | None:
    """What a receiver sent, storable: PostgreSQL text holds no NUL character."""
    if not value:
        return None
    return value.replace("\x00", "")[:limit]


def _succeeded(result: DeliveryResult) -> bool:
    # A 2xx status line is the receiver's acknowledgement, whatever happens to its body.
    return result.status_code is not None and 200 <= result.status_code < 300


async def finish_attempt(
    session: AsyncSession,
    org_id: uuid.UUID,
    delivery_id: uuid.UUID,
    job_id: uuid.UUID,
    result: DeliveryResult,
    attempted_at: datetime,
) -> WebhookDelivery | None:
    """Record an attempt and decide what follows: done, the next retry, or failed (and the
    endpoint disabled when it is gone or failing). Nothing when the job no longer holds the
    delivery (a retry or a disable replaced it while the request was under way)."""
    repo = DeliveryRepository(session, org_id)
    found = await repo.with_endpoint(delivery_id, lock=True)
    if found is None:
        return None
    delivery, endpoint = found
    if delivery.status != DeliveryStatus.pending or delivery.job_id != job_id:
        return None
    now = utcnow()
    delivery.attempts += 1
    session.add(
        WebhookDeliveryAttempt(
            id=uuid7(),
            delivery_id=delivery.id,
            number=delivery.attempts,
            attempted_at=attempted_at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=_text(result.error, 500),
            response_excerpt=_text(result.response_excerpt) or "",
        )
    )
    delivery.last_attempt_at = attempted_at
    delivery.last_status_code = result.status_code
    delivery.last_latency_ms = result.latency_ms
    delivery.last_error = _text(result.error, 500)
    delivery.updated_at = now
    delivery.job_id = None
    delivery.next_attempt_at = None
    step = delivery.retry_step
    if _succeeded(result):
        delivery.status = DeliveryStatus.succeeded
        return delivery
    if result.status_code == 410:
        delivery.status = DeliveryStatus.failed
        await _disable(session, endpoint, DisabledReason.gone)
        return delivery
    if step is not None and step < len(RETRY_SCHEDULE_S):
        run_at = now + timedelta(seconds=retry_delay_s(step))
        job = await _enqueue_attempt(session, org_id, delivery.id, run_at)
        delivery.job_id = job.id
        delivery.next_attempt_at = run_at
        delivery.retry_step = step + 1
        return delivery
    delivery.status = DeliveryStatus.failed
    await session.flush()
    # Past its last retry: the endpoint is failing unless a later event reached it (then it
    # is this payload the receiver refuses, not deliveries as such).
    if step is not None and not await repo.delivered_since(endpoint.id, delivery.created_at):
        await _disable(session, endpoint, DisabledReason.failing)
    return delivery


async def _disable(
    session: AsyncSession, endpoint: WebhookEndpoint, reason: DisabledReason
) -> None:
    if not endpoint.enabled:
        return
    now = utcnow()
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now
    await session.flush()
    await _endpoints_changed(session, endpoint.org_id)
    await DeliveryRepository(session, endpoint.org_id).fail_pending(
        endpoint.id, DISABLED_ERROR, now
    )
    await notify_admins(
        session,
        Cause(
            org_id=endpoint.org_id,
            actor_id=None,
            data={"webhook_id": str(endpoint.id), "url": endpoint.url, "reason": reason.value},
        ),
        NotificationKind.webhook_disabled,
    )


# --- upkeep (periodic tasks) -------------------------------------------------------------------


def _first_uuid7_at(moment: datetime) -> uuid.UUID:
    """The smallest uuid7 made at ``moment``: ids below it were made before."""
    ms = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76))


async def purge_deliveries(session: AsyncSession, retention_days: int) -> int:
    """Drop deliveries (and their attempts) made before the retention window, by id: uuid7
    ids order them by age, so the primary key serves the sweep."""
    cutoff = _first_uuid7_at(utcnow() - timedelta(days=retention_days))
    result = await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


STRANDED_LOOKBACK = timedelta(days=4)


async def fail_stranded(session: AsyncSession) -> int:
    """Pending deliveries whose attempt's job died (its runs used up by crashed workers, not
    by answers) would wait forever: they fail."""
    since = utcnow() - STRANDED_LOOKBACK
    dead = (
        await session.execute(
            select(Job.id, Job.payload).where(
                Job.kind == WEBHOOK_DELIVER.name,
                Job.status.in_((JobStatus.dead, JobStatus.failed)),
                Job.updated_at >= since,
            )
        )
    ).all()
    if not dead:
        return 0
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id.in_([uuid.UUID(row.payload["delivery_id"]) for row in dead]),
            WebhookDelivery.job_id.in_([row.id for row in dead]),
            WebhookDelivery.status == DeliveryStatus.pending,
        )
        .values(
            status=DeliveryStatus.failed,
            job_id=None,
            next_attempt_at=None,
            last_error="delivery_job_failed",
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
