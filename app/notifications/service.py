"""Notifications: written in the caller's transaction, so they exist exactly when their cause
does. Nobody is notified about their own action."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from app.db import utcnow
from app.notifications.models import Notification, NotificationKind
from app.pagination import PageParams, SortKey, paginate
from app.tenancy import Principal

_ORDER = (
    SortKey(Notification.created_at, descending=True),
    SortKey(Notification.id, descending=True),
)


@dataclass(frozen=True)
class Cause:
    """What happened, shared by every recipient of one event."""

    org_id: uuid.UUID
    actor_id: uuid.UUID | None
    clip_id: uuid.UUID | None = None
    feedback_id: uuid.UUID | None = None
    review_request_id: uuid.UUID | None = None
    data: dict[str, Any] | None = None


def notify(
    session: AsyncSession,
    cause: Cause,
    recipients: Iterable[tuple[uuid.UUID, NotificationKind]],
) -> list[Notification]:
    """One notification per recipient: when an event concerns someone for several reasons,
    the first listed wins (callers list the most specific reason first)."""
    seen: set[uuid.UUID] = set()
    created = []
    for user_id, kind in recipients:
        if user_id == cause.actor_id or user_id in seen:
            continue
        seen.add(user_id)
        created.append(
            Notification(
                org_id=cause.org_id,
                user_id=user_id,
                kind=kind,
                actor_id=cause.actor_id,
                clip_id=cause.clip_id,
                feedback_id=cause.feedback_id,
                review_request_id=cause.review_request_id,
                data=dict(cause.data or {}),
            )
        )
    session.add_all(created)
    return created


async def list_notifications(
    session: AsyncSession, principal: Principal, unread: bool | None, page: PageParams
) -> tuple[list[Notification], str | None]:
    stmt = (
        select(Notification)
        .where(Notification.org_id == principal.org_id, Notification.user_id == principal.id)
        .options(joinedload(Notification.actor))
    )
    if unread is True:
        stmt = stmt.where(Notification.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(Notification.read_at.is_not(None))
    return await paginate(session, stmt, _ORDER, page)


async def mark_read(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID] | None
) -> int:
    """Mark the caller's notifications read (the given ids, or all); others' ids are ignored."""
    stmt = (
        update(Notification)
        .where(
            Notification.org_id == principal.org_id,
            Notification.user_id == principal.id,
            Notification.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def unread_count(session: AsyncSession, principal: Principal) -> int:
    count = await session.scalar(
        select(func.count(Notification.id)).where(
            Notification.org_id == principal.org_id,
            Notification.user_id == principal.id,
            Notification.read_at.is_(None),
        )
    )
    return int(count or 0)
