"""The caller's row behind every authenticated request: one statement on the hot-read path
(``app.hotreads``), with the organization's read version (``app.readcache``) in the same
statement; reused for at most ``PEERPITCH_AUTH_RECHECK_S`` (≤ 1 s) by requests that need no
read version (``CallerCache``).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.orm import Session, make_transient_to_detached

from app.hotreads import HotReads
from app.readcache.models import ReadVersion
from app.users.models import Role, User

_COLUMNS = (
    "id",
    "org_id",
    "email",
    "name",
    "role",
    "password_hash",
    "is_active",
    "token_version",
    "created_at",
    "updated_at",
)
# Bound parameter, never interpolated.
_PG = (
    "SELECT u.id, u.org_id, u.email, u.name, u.role, u.password_hash, u.is_active,"
    " u.token_version, u.created_at, u.updated_at,"
    " COALESCE((SELECT v.version FROM read_versions v WHERE v.org_id = u.org_id), 0)"
    " AS read_version FROM users u WHERE u.id = $1"
)
_SELECT = select(
    *(getattr(User, c) for c in _COLUMNS),
    func.coalesce(
        select(ReadVersion.version).where(ReadVersion.org_id == User.org_id).scalar_subquery(),
        0,
    ).label("read_version"),
).where(User.id == bindparam("user_id"))


@dataclass(frozen=True)
class Caller:
    # Made for this request, in no session (a service that changes the caller adds it to
    # its own): never shared between requests.
    user: User
    # The organization's read version, read before anything the request computes; None
    # when the caller came from the cache (``CallerCache.get(fresh=False)``).
    read_version: int | None


async def _read_row(reads: HotReads, user_id: uuid.UUID) -> dict[str, Any] | None:
    row = await reads.row(_PG, (user_id,), _SELECT, {"user_id": user_id})
    return None if row is None else dict(row)


def _caller(row: dict[str, Any], *, fresh: bool) -> Caller:
    user = User(
        id=row["id"],
        org_id=row["org_id"],
        email=row["email"],
        name=row["name"],
        role=Role(row["role"]),
        password_hash=row["password_hash"],
        is_active=row["is_active"],
        token_version=row["token_version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
    # As if loaded by a query: persistent and unmodified once added to a session, so a
    # service that changes the caller (PATCH /v1/me) writes an UPDATE as before.
    make_transient_to_detached(user)
    return Caller(user=user, read_version=int(row["read_version"]) if fresh else None)


# session.info keys: the process's CallerCache (put there by the app's sessionmaker) and the
# users a transaction changed.
CALLERS_INFO = "peerpitch.callers"
_CHANGED_USERS = "peerpitch.changed_users"


class CallerCache:
    """Callers' rows as this process last read them, reused for at most ``max_age_s``
    (``PEERPITCH_AUTH_RECHECK_S``, at most 1 s) by requests that need no read version.

    The bound holds on every process: a deactivation, a role change or a password change
    made anywhere is seen by every process within ``max_age_s`` (the age counts from before
    the read). A change committed through this process's own sessions is seen at once: the
    session hooks below forget the users it changed. The token itself is verified on every
    request, before this cache is asked.
    """

    def __init__(
        self,
        reads: HotReads,
        max_age_s: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reads = reads
        self.max_age_s = max_age_s
        self.clock = clock
        self._max = max_entries
        self._rows: OrderedDict[uuid.UUID, tuple[float, dict[str, Any]]] = OrderedDict()

    async def get(self, user_id: uuid.UUID, *, fresh: bool) -> Caller | None:
        """The caller, read now when ``fresh`` (with the read version) or when the kept row
        is ``max_age_s`` old; None when there is no such user."""
        if not fresh:
            kept = self._rows.get(user_id)
            if kept is not None and self.clock() - kept[0] < self.max_age_s:
                return _caller(kept[1], fresh=False)
        started = self.clock()
        row = await _read_row(self.reads, user_id)
        if row is None:
            self._rows.pop(user_id, None)
            return None
        if self.max_age_s > 0:
            self._rows[user_id] = (started, row)
            self._rows.move_to_end(user_id)
            if len(self._rows) > self._max:
                self._rows.popitem(last=False)
        return _caller(row, fresh=True)

    def forget(self, user_ids: Iterable[uuid.UUID]) -> None:
        for user_id in user_ids:
            self._rows.pop(user_id, None)


@event.listens_for(Session, "after_flush")
def _note_changed_users(session: Session, _flush_context: Any) -> None:
    if CALLERS_INFO in session.info:
        changed = {o.id for o in (*session.dirty, *session.deleted) if isinstance(o, User)}
        if changed:
            session.info.setdefault(_CHANGED_USERS, set()).update(changed)


@event.listens_for(Session, "after_commit")
def _forget_changed_users(session: Session) -> None:
    changed = session.info.pop(_CHANGED_USERS, None)
    if changed:
        session.info[CALLERS_INFO].forget(changed)


@event.listens_for(Session, "after_soft_rollback")
def _drop_changed_users(session: Session, _previous: Any) -> None:
    session.info.pop(_CHANGED_USERS, None)
