"""The caller's row, read on every authenticated request: one statement on the hot-read path
(``app.hotreads``), with the organization's read version (``app.readcache``) in the same
statement.

Read afresh each request (no cache), so a deactivation, a role change or a revoked token
takes effect on every API process at the next request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import make_transient_to_detached

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
    # Detached: not yet in any session (app.deps adds it to the request's).
    user: User
    # The organization's read version, read before anything the request computes.
    read_version: int


async def read_caller(reads: HotReads, user_id: uuid.UUID) -> Caller | None:
    row = await reads.row(_PG, (user_id,), _SELECT, {"user_id": user_id})
    if row is None:
        return None
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
    return Caller(user=user, read_version=int(row["read_version"]))
