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
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
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
from sqlalchemy.util.concurrency import await_

from app.db import utcnow, uuid7
from app.events.models import Event, EventSequence
from app.events.types import EVENT_TYPES

NOTIFY_CHANNEL = "peerpitch_events"

# Side effects of every recorded event, in its transaction, run as it commits with the
# event's seq known, and only for organizations with subscribers (e.g. webhook deliveries); wired
# by the composition root (app.tasks), since this module imports no domain.
RecordedHook = Callable[[AsyncSession, Event], Awaitable[None]]
_recorded_hooks: list[RecordedHook] = []


def on_recorded(hook: RecordedHook) -> None:
    if hook not in _recorded_hooks:
        _recorded_hooks.append(hook)


# A transaction's events are written just before it commits, all at once, with their seqs:
# the organization's sequence row stays locked only from there to the commit (writers of one
# organization queue for a moment, not for the rest of each other's requests), and on
# PostgreSQL the whole outbox costs the transaction one statement.
_PENDING_EVENTS = "peerpitch_events_pending_rows"
_ASYNC_SESSION = "peerpitch_events_async_session"

_WRITE_PG = text(
    """
    WITH s AS (
        INSERT INTO event_sequences (org_id, last_seq) VALUES (:org_id, :n)
        ON CONFLICT (org_id) DO UPDATE SET last_seq = event_sequences.last_seq + :n
        RETURNING last_seq, subscribers
    )
    INSERT INTO events (id, org_id, seq, type, occurred_at, data, clip_id, user_id)
    SELECT t.id, :org_id, s.last_seq - :n + t.ord, t.type, t.occurred_at, t.data,
           t.clip_id, t.user_id
    FROM s, unnest(
        CAST(:ids AS uuid[]), CAST(:types AS text[]), CAST(:occurred AS timestamptz[]),
        CAST(:datas AS json[]), CAST(:clip_ids AS uuid[]), CAST(:user_ids AS uuid[])
    ) WITH ORDINALITY AS t(id, type, occurred_at, data, clip_id, user_id, ord)
    RETURNING id, seq, (SELECT subscribers FROM s), pg_notify(:channel, CAST(:org_id AS TEXT))
    """
).bindparams(bindparam("org_id", type_=Uuid()))


def _text_or_none(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _write_events(sync_session: Session) -> None:
    """before_commit: write the transaction's events with their seqs, in the order recorded
    (on PostgreSQL one statement per organization, with the NOTIFY that wakes live streams;
    delivered at commit, and PostgreSQL folds a transaction's identical ones)."""
    pending: dict[uuid.UUID, list[Event]] = sync_session.info.pop(_PENDING_EVENTS, {})
    if not pending:
        return
    postgres = sync_session.get_bind().dialect.name == "postgresql"
    for org_id, rows in pending.items():
        n = len(rows)
        if postgres:
            result = sync_session.execute(
                _WRITE_PG,
                {
                    "org_id": org_id,
                    "n": n,
                    "ids": [str(r.id) for r in rows],
                    "types": [r.type for r in rows],
                    "occurred": [r.occurred_at for r in rows],
                    "datas": [orjson.dumps(r.data).decode() for r in rows],
                    "clip_ids": [_text_or_none(r.clip_id) for r in rows],
                    "user_ids": [_text_or_none(r.user_id) for r in rows],
                    "channel": NOTIFY_CHANNEL,
                },
            )
            last, subscribers = _numbered(rows, result.all())
            _run_hooks(sync_session, rows, subscribers)
            continue
        upsert = (
            sqlite_insert(EventSequence)
            .values(org_id=org_id, last_seq=n)
            .on_conflict_do_update(
                index_elements=[EventSequence.org_id],
                set_={"last_seq": EventSequence.last_seq + n},
            )
            .returning(EventSequence.last_seq, EventSequence.subscribers)
        )
        last, subscribers = sync_session.execute(upsert).one()
        first = int(last) - n + 1
        sync_session.execute(
            insert(Event),
            [
                {
                    "id": r.id,
                    "org_id": org_id,
                    "seq": first + i,
                    "type": r.type,
                    "occurred_at": r.occurred_at,
                    "data": r.data,
                    "clip_id": r.clip_id,
                    "user_id": r.user_id,
                }
                for i, r in enumerate(rows)
            ],
        )
        for i, r in enumerate(rows):
            r.seq = first + i
        _run_hooks(sync_session, rows, int(subscribers))


def _numbered(rows: list[Event], result: Sequence[Any]) -> tuple[int, int]:
    """Give the rows the seqs the write returned (id, seq, subscribers per row); returns
    (last seq, subscribers)."""
    seqs = {str(line[0]): int(line[1]) for line in result}
    for row in rows:
        row.seq = seqs[str(row.id)]
    return max(seqs.values()), int(result[0][2])


def _run_hooks(sync_session: Session, rows: list[Event], subscribers: int) -> None:
    """The recorded hooks (webhook fan-out), now that the rows have their seqs, still in the
    transaction; skipped when nothing subscribes to the organization's events."""
    if not subscribers or not _recorded_hooks:
        return
    session: AsyncSession = sync_session.info[_ASYNC_SESSION]
    for row in rows:
        for hook in _recorded_hooks:
            await_(hook(session, row))


async def set_subscribers(session: AsyncSession, org_id: uuid.UUID, count: int) -> None:
    """How many hooks want the organization's events (its enabled webhook endpoints); set in
    the transaction that changes them, which takes the sequence row's lock, so an event
    committing concurrently sees the count before or after the change, never a mix."""
    dialect = session.get_bind().dialect.name
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert_(EventSequence)
        .values(org_id=org_id, last_seq=0, subscribers=count)
        .on_conflict_do_update(index_elements=[EventSequence.org_id], set_={"subscribers": count})
    )


def _drop_pending(sync_session: Session) -> None:
    sync_session.info.pop(_PENDING_EVENTS, None)


def _as_text(value: object) -> str:
    """For what orjson does not know: the driver's own UUID type of raw rows (asyncpg)."""
    if isinstance(value, uuid.UUID) or type(value).__name__ == "UUID":
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def record(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    type: str,
    data: dict[str, Any],
    clip_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> Event:
    """Add an event to the caller's transaction: written, with its ``seq``, just before the
    transaction commits (so the returned row's ``seq`` is None, and nothing is written if
    it rolls back). The row is not in the session; hooks read its fields."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}: add it to app.events.types")
    # One serialization, by orjson (datetimes, UUIDs and enums as the API writes them): the
    # data may be a response's plain fields rather than a validated model.
    data = orjson.loads(orjson.dumps(data, default=_as_text, option=orjson.OPT_UTC_Z))
    row = Event(
        id=uuid7(),
        org_id=org_id,
        type=type,
        occurred_at=utcnow(),
        data=data,
        clip_id=clip_id,
        user_id=user_id,
    )
    sync = session.sync_session
    if not event.contains(sync, "before_commit", _write_events):
        event.listen(sync, "before_commit", _write_events)
        event.listen(sync, "after_rollback", _drop_pending)
    sync.info.setdefault(_PENDING_EVENTS, {}).setdefault(org_id, []).append(row)
    sync.info[_ASYNC_SESSION] = session
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


def _first_uuid7_at(moment: datetime) -> uuid.UUID:
    """The smallest uuid7 made at ``moment``: ids below it were made before."""
    ms = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(ms << 80) | (0x7 << 76))


async def purge_expired(session: AsyncSession, retention_days: int) -> int:
    """Drop events recorded before the retention window, by id (uuid7 ids are made at record
    time, so the primary key orders them by age: no index of its own for the sweep)."""
    cutoff = _first_uuid7_at(utcnow() - timedelta(days=retention_days))
    result = await session.execute(delete(Event).where(Event.id < cutoff))
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
