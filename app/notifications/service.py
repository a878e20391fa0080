"""Notifications: written in the caller's transaction, so they exist exactly when their cause
does. Nobody is notified about their own action."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.notifications.models import Notification, NotificationKind
from app.notifications.repository import NotificationRepository
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
    stmt = NotificationRepository.of(session, principal).of_user(principal.id, unread)
    return await paginate(session, stmt, _ORDER, page)


async def mark_read(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID] | None
) -> int:
    """Mark the caller's notifications read (the given ids, or all); others' ids are ignored."""
    return await NotificationRepository.of(session, principal).mark_read(principal.id, ids)


async def unread_count(session: AsyncSession, principal: Principal) -> int:
    return await NotificationRepository.of(session, principal).unread_count(principal.id)
