"""Recording events (the outbox) and reading them back.

``record`` adds the event to the caller's transaction, so it commits exactly when its cause
does and never otherwise. Its ``seq`` comes from the organization's row in
``event_sequences``, taken with an upsert that locks the row until commit: a second
transaction of the same organization waits there, so seq order is commit order and a reader
that has seen seq N never later finds a smaller one (what ``Last-Event-ID`` and webhook
receivers ordering by seq rely on).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Uuid,
    bindparam,
    delete,
    event,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.db import utcnow, uuid7
from app.events.models import Event, EventSequence
from app.events.types import EVENT_TYPES

NOTIFY_CHANNEL = "peerpitch_events"

# Side effects of every recorded event, in its transaction (e.g. webhook deliveries); wired
# by the composition root (app.tasks), since this module imports no domain.
RecordedHook = Callable[[AsyncSession, Event], Awaitable[None]]
_recorded_hooks: list[RecordedHook] = []


def on_recorded(hook: RecordedHook) -> None:
    if hook not in _recorded_hooks:
        _recorded_hooks.append(hook)


async def _next_seq(session: AsyncSession, org_id: uuid.UUID) -> int:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    upsert = (
        insert(EventSequence)
        .values(org_id=org_id, last_seq=1)
        .on_conflict_do_update(
            index_elements=[EventSequence.org_id],
            set_={"last_seq": EventSequence.last_seq + 1},
        )
        .returning(EventSequence.last_seq)
    )
    return int((await session.execute(upsert)).scalar_one())


# PostgreSQL: the sequence bump, the row and its NOTIFY in one round trip (this runs on every
# write of the product, e.g. each feedback post and its notification). NOTIFY is delivered at
# commit, and PostgreSQL folds a transaction's identical notifications into one.
_RECORD_PG = text(
    """
    WITH s AS (
        INSERT INTO event_sequences (org_id, last_seq) VALUES (:org_id, 1)
        ON CONFLICT (org_id) DO UPDATE SET last_seq = event_sequences.last_seq + 1
        RETURNING last_seq
    ), e AS (
        INSERT INTO events (id, org_id, seq, type, occurred_at, data, clip_id, user_id)
        SELECT :id, :org_id, s.last_seq, :type, :occurred_at, CAST(:data AS JSON),
               :clip_id, :user_id
        FROM s
        RETURNING seq
    )
    SELECT e.seq, pg_notify(:channel, CAST(:org_id AS TEXT)) FROM e
    """
).bindparams(
    bindparam("id", type_=Uuid()),
    bindparam("org_id", type_=Uuid()),
    bindparam("clip_id", type_=Uuid()),
    bindparam("user_id", type_=Uuid()),
    bindparam("occurred_at", type_=DateTime(timezone=True)),
)


async def record(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
    clip_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> Event:
    """Add an event to the caller's transaction. The returned row is not in the session
    (it is written by a statement of its own); hooks and callers read its fields."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}: add it to app.events.types")
    row = Event(
        id=uuid7(),
        org_id=org_id,
        type=type,
        occurred_at=utcnow(),
        data=data,
        clip_id=clip_id,
        user_id=user_id,
    )
    if session.get_bind().dialect.name == "postgresql":
        result = await session.execute(
            _RECORD_PG,
            {
                "id": row.id,
                "org_id": org_id,
                "type": type,
                "occurred_at": row.occurred_at,
                "data": json.dumps(data, separators=(",", ":")),
                "clip_id": clip_id,
                "user_id": user_id,
                "channel": NOTIFY_CHANNEL,
            },
        )
        row.seq = int(result.scalar_one())
    else:
        row.seq = await _next_seq(session, org_id)
        await session.execute(
            insert(Event).values(
                id=row.id,
                org_id=org_id,
                seq=row.seq,
                type=type,
                occurred_at=row.occurred_at,
                data=data,
                clip_id=clip_id,
                user_id=user_id,
            )
        )
    for hook in _recorded_hooks:
        await hook(session, row)
    _wake_after_commit(session, org_id)
    return row


def payload(row: Event) -> dict[str, Any]:
    """The event as the API, webhooks and the stream show it."""
    return {
        "id": str(row.id),
        "type": row.type,
        "seq": row.seq,
        "occurred_at": row.occurred_at.isoformat().replace("+00:00", "Z"),
        "org_id": str(row.org_id),
        "data": row.data,
    }


def _type_filter(patterns: list[str]) -> ColumnElement[bool] | None:
    """SQL for ``*``, ``clip.*`` and exact types (patterns are validated by the caller)."""
    if "*" in patterns:
        return None
    exact = [p for p in patterns if not p.endswith(".*")]
    prefixes = [p[:-1] for p in patterns if p.endswith(".*")]
    clauses: list[ColumnElement[bool]] = [Event.type.in_(exact)] if exact else []
    clauses += [Event.type.startswith(prefix, autoescape=True) for prefix in prefixes]
    return or_(*clauses)


async def events_after(
    session: AsyncSession,
    org_id: uuid.UUID,
    after: int,
    *,
    limit: int,
    patterns: list[str] | None = None,
) -> list[Event]:
    """The organization's events with seq > ``after`` (of the given types), oldest first."""
    query = select(Event).where(Event.org_id == org_id, Event.seq > after)
    if patterns and (type_filter := _type_filter(patterns)) is not None:
        query = query.where(type_filter)
    return list(await session.scalars(query.order_by(Event.seq).limit(limit)))


async def last_seq(session: AsyncSession, org_id: uuid.UUID) -> int:
    seq = await session.scalar(select(EventSequence.last_seq).where(EventSequence.org_id == org_id))
    return int(seq or 0)


async def purge_expired(session: AsyncSession, retention_days: int) -> int:
    cutoff = utcnow() - timedelta(days=retention_days)
    result = await session.execute(delete(Event).where(Event.occurred_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- wake-ups after commit -------------------------------------------------------------
# PostgreSQL: NOTIFY inside the transaction (delivered at commit, never for a rollback)
# reaches every API process; in-process listeners (SQLite, and a head start on PostgreSQL)
# are called after commit with the organization's id.

_listeners: set[Callable[[uuid.UUID], None]] = set()
_PENDING = "peerpitch_events_pending"


def add_listener(callback: Callable[[uuid.UUID], None]) -> None:
    """``callback(org_id)`` after a transaction that recorded events commits. It must be
    safe to call from any thread (e.g. ``loop.call_soon_threadsafe``)."""
    _listeners.add(callback)


def remove_listener(callback: Callable[[uuid.UUID], None]) -> None:
    _listeners.discard(callback)


def notify_local(org_id: uuid.UUID) -> None:
    for callback in list(_listeners):
        with contextlib.suppress(RuntimeError):  # its loop is closed; it unregisters itself
            callback(org_id)


def _after_commit(sync_session: Session) -> None:
    for org_id in sync_session.info.pop(_PENDING, ()):
        notify_local(org_id)


def _after_rollback(sync_session: Session) -> None:
    sync_session.info.pop(_PENDING, None)


def _wake_after_commit(session: AsyncSession, org_id: uuid.UUID) -> None:
    sync = session.sync_session
    if not event.contains(sync, "after_commit", _after_commit):
        event.listen(sync, "after_commit", _after_commit)
        event.listen(sync, "after_rollback", _after_rollback)
    pending: set[uuid.UUID] = sync.info.setdefault(_PENDING, set())
    pending.add(org_id)
