"""The live event stream (``GET /v1/events/stream``): one hub per API process fans each
organization's new events out to the open streams of its users.

Per organization the hub keeps the last seq it has read. A wake-up (PostgreSQL: a NOTIFY on
``events.NOTIFY_CHANNEL`` read by the hub's one LISTEN connection, from any process; every
database: ``events.add_listener`` after a commit in this process; SQLite: also a poll every
second, for other processes) makes it read the events after that seq with one query, the
visibility facts of their clips with one or two (``app.clips.access.visibility_facts``) and
its streams' users with one, then hand each stream the frames its user may see, in memory:
the cost of a wake-up does not grow with the number of streams, only the fan-out does.

Who sees what, per event: ``user_id`` set (a notification): that user only; else
``clip_id`` set: the clip's visibility for the user (``app.clips.access.may_see``; a
``clip.deleted`` is judged as if the clip were still there, so those who saw it learn that
it is gone); else nobody. Streams never cross organizations (one hub entry per org).

A stream resumes from ``Last-Event-ID`` (a seq): the events it missed, in order, are read
for it alone once (``backfill``), then it follows the hub. Its queue is bounded: a stream
that falls ``QUEUE_LIMIT`` frames behind is closed, and its client reconnects with the last
id it got. It ends with an ``auth_expired`` event when its access token expires (or its user
is deactivated), so the app refreshes its token and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clips.access import ClipFacts, Viewer, may_see, visibility_facts
from app.db import make_sessionmaker
from app.errors import ServiceUnavailable
from app.events import service as events
from app.events.models import Event
from app.events.types import CLIP_DELETED
from app.users.models import User
from app.users.repository import UserRepository

log = logging.getLogger("peerpitch.events.stream")

PING_S = 15.0
# How often the hub looks for events without a wake-up: SQLite's only news of commits made
# by other processes, and PostgreSQL's while its LISTEN connection is down.
POLL_S = 1.0
# Frames a stream may have waiting before it is closed as too slow.
QUEUE_LIMIT = 1000
# Events read per query (the hub per wake-up, a stream's backfill).
BATCH = 500
# Streams' users are re-read on every wake-up that brings events (roles decide visibility)
# and at least this often, so a deactivated user's stream ends even when nothing happens.
USER_CHECK_S = 30.0
# A send that does not complete within this (a client that stopped reading) ends the stream.
SEND_TIMEOUT_S = 15.0
# Open streams per API process; beyond it new ones are refused with 503.
MAX_STREAMS = 10_000
# The client's reconnection delay (the SSE ``retry:`` field), in milliseconds.
RETRY_MS = 2000
LISTEN_KEEPALIVE_S = 30.0
LISTEN_RETRY_MAX_S = 30.0
# SQLAlchemy URL query options that asyncpg.connect does not understand.
_SA_ONLY_QUERY = ("prepared_statement_cache_size", "prepared_statement_name_func")

EndReason = Literal["token_expired", "deactivated", "lagging", "shutdown"]


def frame(seq: int, event_type: str, data: str) -> bytes:
    """One SSE message (``data`` is one line of JSON: json.dumps escapes newlines)."""
    return f"id: {seq}\nevent: {event_type}\ndata: {data}\n\n".encode()


def _event_frame(row: Event) -> bytes:
    body = json.dumps(events.payload(row), separators=(",", ":"), ensure_ascii=False)
    return frame(int(row.seq or 0), row.type, body)


RETRY_FRAME = f"retry: {RETRY_MS}\n\n".encode()
AUTH_EXPIRED = "auth_expired"


def _auth_expired(code: str) -> bytes:
    return f'event: {AUTH_EXPIRED}\ndata: {{"code": "{code}"}}\n\n'.encode()


def _visible(row: Event, facts: dict[uuid.UUID, ClipFacts], viewer: Viewer) -> bool:
    """The stream's rule for one event and one viewer (see the module docstring)."""
    if row.user_id is not None:
        return row.user_id == viewer.id
    if row.clip_id is None:
        return False
    clip = facts.get(row.clip_id)
    if clip is None:
        return False
    if row.type == CLIP_DELETED:
        clip = clip._replace(deleted=False)
    return may_see(clip, viewer)


def _clip_ids(rows: Collection[Event]) -> set[uuid.UUID]:
    return {r.clip_id for r in rows if r.user_id is None and r.clip_id is not None}


def access_token_expiry(authorization: str | None) -> float | None:
    """The ``exp`` (Unix time) of a bearer access token the auth dependency already
    verified; None when absent."""
    if not authorization or " " not in authorization:
        return None
    token = authorization.split(" ", 1)[1].strip()
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _asyncpg_dsn(url: URL) -> str:
    return (
        url.set(drivername="postgresql")
        .difference_update_query(_SA_ONLY_QUERY)
        .render_as_string(hide_password=False)
    )


# --- the hub ---------------------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    """One open stream: its user, where it stands, and the frames waiting for it."""

    org_id: uuid.UUID
    viewer: Viewer
    # The last seq delivered (or skipped as invisible): frames at or below it are dropped.
    cursor: int
    # Events (cursor, backfill_until] are read for this stream alone before it follows the
    # hub; None when the hub has not read past the cursor.
    backfill_until: int | None
    frames: deque[tuple[int, bytes]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ended: EndReason | None = None

    def push(self, seq: int, data: bytes, limit: int) -> None:
        if self.ended is not None:
            return
        if len(self.frames) >= limit:
            self.end("lagging")
            return
        self.frames.append((seq, data))
        self.wake.set()

    def end(self, reason: EndReason) -> None:
        if self.ended is None:
            self.ended = reason
        self.wake.set()


@dataclass(eq=False)
class _Org:
    org_id: uuid.UUID
    last_seq: int
    # Streams by user: the visibility rule runs once per user, not per stream.
    users: dict[uuid.UUID, set[Subscription]] = field(default_factory=dict)
    viewers: dict[uuid.UUID, Viewer] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    check_users: bool = False
    closed: bool = False
    task: asyncio.Task[None] | None = None


class EventHub:
    """The per-process fan-out of new events to open streams (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        listen: bool = True,
        local_wakeups: bool = True,
        poll_interval_s: float | None = None,
        queue_limit: int = QUEUE_LIMIT,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self._engine = engine
        postgres = engine.dialect.name == "postgresql"
        # Reads only: on SQLite a deferred transaction, never the write lock.
        self._reader: async_sessionmaker[AsyncSession] = make_sessionmaker(
            engine.execution_options(sqlite_begin="")
        )
        self._listen_enabled = listen and postgres
        self._local_wakeups = local_wakeups
        self._poll_s = poll_interval_s if poll_interval_s is not None else POLL_S
        self._poll_always = not postgres
        self.queue_limit = queue_limit
        self.max_streams = max_streams
        self._orgs: dict[uuid.UUID, _Org] = {}
        self._streams = 0
        self._tasks: list[asyncio.Task[None]] = []
        # Every org's reader task, running or finishing (a dropped org's ends at its wake).
        self._org_tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.listening = asyncio.Event()  # set while LISTEN is active (tests, bench)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._local_wakeups:
            events.add_listener(self._on_local_commit)
        self._tasks.append(asyncio.create_task(self._poll(), name="events-hub-poll"))
        self._tasks.append(asyncio.create_task(self._user_sweep(), name="events-hub-users"))
        if self._listen_enabled:
            self._tasks.append(asyncio.create_task(self._listen(), name="events-hub-listen"))

    async def close(self) -> None:
        """End every stream (their clients reconnect to another process) and stop."""
        events.remove_listener(self._on_local_commit)
        for org in list(self._orgs.values()):
            for subs in org.users.values():
                for sub in subs:
                    sub.end("shutdown")
            self._drop_org(org)
        tasks = [t for t in [*self._tasks, *self._org_tasks] if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # --- streams -----------------------------------------------------------------------

    @property
    def stream_count(self) -> int:
        return self._streams

    @property
    def org_count(self) -> int:
        return len(self._orgs)

    def ensure_capacity(self) -> None:
        if self._streams >= self.max_streams:
            raise ServiceUnavailable(
                "This server has too many open event streams; retry shortly.",
                headers={"Retry-After": "5"},
            )

    def subscribe(self, user: User, start: int, current: int) -> Subscription:
        """Register a stream that has seen events up to ``start``; ``current`` is the
        organization's last seq read when the stream was opened. No await: the hub's
        position is read and the stream registered at one point between two fan-outs."""
        org = self._orgs.get(user.org_id)
        if org is None:
            org = _Org(user.org_id, last_seq=current)
            org.task = asyncio.create_task(self._run_org(org), name=f"events-hub-{user.org_id}")
            self._org_tasks.add(org.task)
            org.task.add_done_callback(self._org_tasks.discard)
            self._orgs[user.org_id] = org
            org.wake.set()  # whatever committed since ``current`` was read
        viewer = Viewer.of(user)
        sub = Subscription(
            org_id=user.org_id,
            viewer=viewer,
            cursor=start,
            backfill_until=org.last_seq if org.last_seq > start else None,
        )
        org.users.setdefault(viewer.id, set()).add(sub)
        org.viewers[viewer.id] = viewer
        self._streams += 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        org = self._orgs.get(sub.org_id)
        if org is None:
            return
        subs = org.users.get(sub.viewer.id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        self._streams -= 1
        if not subs:
            del org.users[sub.viewer.id]
            org.viewers.pop(sub.viewer.id, None)
        if not org.users:
            self._drop_org(org)

    def _drop_org(self, org: _Org) -> None:
        if self._orgs.get(org.org_id) is org:
            del self._orgs[org.org_id]
            self._streams -= sum(len(s) for s in org.users.values())
            org.users.clear()
        org.closed = True
        org.wake.set()  # its task sees ``closed`` and returns

    async def backfill(self, sub: Subscription) -> AsyncIterator[bytes]:
        """The events a resuming stream missed, (cursor, backfill_until], that its user
        may see, in order: read for this stream alone, once."""
        until = sub.backfill_until
        sub.backfill_until = None
        while until is not None and sub.cursor < until:
            async with self._reader() as session:
                rows = await events.events_after(session, sub.org_id, sub.cursor, limit=BATCH)
                rows = [r for r in rows if r.seq is not None and r.seq <= until]
                facts = await visibility_facts(session, sub.org_id, _clip_ids(rows))
            if not rows:
                return
            for row in rows:
                seq = int(row.seq or 0)
                sub.cursor = seq
                if _visible(row, facts, sub.viewer):
                    yield _event_frame(row)
            if len(rows) < BATCH:
                return

    # --- wake-ups ----------------------------------------------------------------------

    def wake(self, org_id: uuid.UUID) -> None:
        org = self._orgs.get(org_id)
        if org is not None:
            org.wake.set()

    def _wake_all(self) -> None:
        for org in self._orgs.values():
            org.wake.set()

    def _on_local_commit(self, org_id: uuid.UUID) -> None:
        # Called after a commit, possibly from another thread.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake, org_id)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.wake(uuid.UUID(payload))

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection (pooled ones are reset and shared); reconnect
        with backoff if it drops, while the poll carries on meanwhile."""
        import asyncpg  # type: ignore[import-untyped,unused-ignore]

        delay = 1.0
        dsn = _asyncpg_dsn(self._engine.url)
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(dsn)
                await conn.add_listener(events.NOTIFY_CHANNEL, self._on_notify)
                self.listening.set()
                self._wake_all()  # notifications may have been missed while disconnected
                delay = 1.0
                while True:
                    await asyncio.sleep(LISTEN_KEEPALIVE_S)
                    # Without traffic a dead TCP connection is never noticed.
                    await conn.fetchval("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("events LISTEN connection failed (%r); retrying in %g s", exc, delay)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, LISTEN_RETRY_MAX_S)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            if self._poll_always or not self.listening.is_set():
                self._wake_all()

    async def _user_sweep(self) -> None:
        while True:
            await asyncio.sleep(USER_CHECK_S)
            for org in self._orgs.values():
                org.check_users = True
                org.wake.set()

    # --- reading and fan-out -----------------------------------------------------------

    async def _run_org(self, org: _Org) -> None:
        while True:
            await org.wake.wait()
            org.wake.clear()
            if org.closed:
                return
            try:
                await self._pump(org)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading events of org %s failed; retrying", org.org_id)
                await asyncio.sleep(1.0)
                org.wake.set()

    async def _pump(self, org: _Org) -> None:
        """Read the organization's new events and hand them to its streams."""
        async with self._reader() as session:
            while not org.closed:
                rows = await events.events_after(session, org.org_id, org.last_seq, limit=BATCH)
                if rows or org.check_users:
                    org.check_users = False
                    await self._refresh_users(session, org)
                if not rows:
                    return
                facts = await visibility_facts(session, org.org_id, _clip_ids(rows))
                # From here to the new last_seq no await: a stream registering meanwhile
                # either gets these rows here or reads them in its backfill.
                self._fan_out(org, rows, facts)
                org.last_seq = int(rows[-1].seq or org.last_seq)
                if len(rows) < BATCH:
                    return

    async def _refresh_users(self, session: AsyncSession, org: _Org) -> None:
        """Re-read the streams' users (one query): a role change changes what they see; a
        deactivated user's streams end."""
        if not org.users:
            return
        users = await UserRepository(session, org.org_id).by_ids(list(org.users))
        for user_id in list(org.users):
            user = users.get(user_id)
            if user is None or not user.is_active:
                for sub in org.users.get(user_id, ()):
                    sub.end("deactivated")
            else:
                org.viewers[user_id] = viewer = Viewer.of(user)
                for sub in org.users.get(user_id, ()):
                    sub.viewer = viewer

    def _fan_out(self, org: _Org, rows: list[Event], facts: dict[uuid.UUID, ClipFacts]) -> None:
        limit = self.queue_limit
        for row in rows:
            if row.seq is None:
                continue
            data: bytes | None = None
            if row.user_id is not None:
                targets = [row.user_id] if row.user_id in org.users else []
            else:
                targets = [
                    user_id
                    for user_id, viewer in org.viewers.items()
                    if _visible(row, facts, viewer)
                ]
            for user_id in targets:
                data = data or _event_frame(row)  # built once, shared by every stream
                for sub in org.users.get(user_id, ()):
                    sub.push(row.seq, data, limit)


# --- one stream ----------------------------------------------------------------------------


async def start_position(
    session: AsyncSession, org_id: uuid.UUID, last_event_id: int | None
) -> tuple[int, int]:
    """(the seq a new stream has seen up to, the organization's last seq): a
    ``Last-Event-ID`` beyond the last seq (another database, a reset) counts as the last."""
    current = await events.last_seq(session, org_id)
    start = current if last_event_id is None else min(last_event_id, current)
    return start, current


async def event_stream(
    hub: EventHub, user: User, start: int, current: int, expires_at: float | None
) -> AsyncGenerator[bytes, None]:
    """The frames of one stream until its token expires, its user is deactivated, it lags
    too far, the server stops or the client goes (the response then cancels it here)."""
    sub = hub.subscribe(user, start, current)
    loop = asyncio.get_running_loop()
    # The token's end in this loop's clock.
    deadline = None if expires_at is None else loop.time() + (expires_at - time.time())
    try:
        yield RETRY_FRAME
        async for data in hub.backfill(sub):
            yield data
        while True:
            sub.wake.clear()
            while sub.frames:
                seq, data = sub.frames.popleft()
                if seq > sub.cursor:
                    sub.cursor = seq
                    yield data
            if sub.ended == "deactivated":
                yield _auth_expired("invalid_token")
                return
            if sub.ended is not None:
                return
            if deadline is not None and loop.time() >= deadline:
                yield _auth_expired("token_expired")
                return
            if deadline is None:
                await sub.wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await sub.wake.wait()
    finally:
        hub.unsubscribe(sub)
