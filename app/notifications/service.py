"""Notifications: written in the caller's transaction, so they exist exactly when their cause
does. Nobody is notified about their own action."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow, uuid7
from app.events import service as events
from app.events.types import NOTIFICATION_CREATED
from app.notifications.models import Notification, NotificationKind
from app.notifications.repository import NotificationRepository
from app.pagination import PageParams, SortKey, paginate
from app.tenancy import Principal
from app.users.models import Role, User

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


async def notify(
    session: AsyncSession,
    cause: Cause,
    recipients: Iterable[tuple[uuid.UUID, NotificationKind]],
) -> list[Notification]:
    """One notification per recipient: when an event concerns someone for several reasons,
    the first listed wins (callers list the most specific reason first). Each one is also a
    ``notification.created`` event for its recipient's live stream."""
    seen: set[uuid.UUID] = set()
    created = []
    for user_id, kind in recipients:
        if user_id == cause.actor_id or user_id in seen:
            continue
        seen.add(user_id)
        created.append(
            Notification(
                id=uuid7(),
                org_id=cause.org_id,
                user_id=user_id,
                kind=kind,
                actor_id=cause.actor_id,
                clip_id=cause.clip_id,
                feedback_id=cause.feedback_id,
                review_request_id=cause.review_request_id,
                data=dict(cause.data or {}),
                created_at=utcnow(),
            )
        )
    session.add_all(created)
    # The actor is the caller (already in the session's identity map) or nobody.
    actor = await session.get(User, cause.actor_id) if cause.actor_id else None
    for n in created:
        await events.record(
            session,
            org_id=n.org_id,
            type=NOTIFICATION_CREATED,
            data=event_data(n, actor),
            user_id=n.user_id,
        )
    return created


def event_data(n: Notification, actor: User | None) -> dict[str, Any]:
    """NotificationOut's fields as plain data (one is written for every notification)."""
    return {
        "id": n.id,
        "kind": n.kind,
        "actor": None
        if actor is None
        else {"id": actor.id, "name": actor.name, "role": actor.role},
        "clip_id": n.clip_id,
        "feedback_id": n.feedback_id,
        "review_request_id": n.review_request_id,
        "data": n.data,
        "read_at": n.read_at,
        "created_at": n.created_at,
    }


async def notify_admins(
    session: AsyncSession, cause: Cause, kind: NotificationKind
) -> list[Notification]:
    """Tell every active admin of the organization (system events: ``actor_id`` is None)."""
    admins = await session.scalars(
        select(User.id).where(
            User.org_id == cause.org_id, User.role == Role.admin, User.is_active.is_(True)
        )
    )
    return await notify(session, cause, [(admin_id, kind) for admin_id in admins])


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
