"""Notifications of one organization; each user reads only their own."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, update
from sqlalchemy.orm import joinedload

from app.db import utcnow
from app.notifications.models import Notification
from app.tenancy import TenantRepository


class NotificationRepository(TenantRepository[Notification]):
    model = Notification

    def _of(self, user_id: uuid.UUID) -> ColumnElement[bool]:
        return self.where_in_org() & (Notification.user_id == user_id)

    def of_user(self, user_id: uuid.UUID, unread: bool | None) -> Select[Any]:
        """A user's notifications (all, unread or read), with their actor loaded."""
        stmt = (
            self.select()
            .where(Notification.user_id == user_id)
            .options(joinedload(Notification.actor))
        )
        if unread is True:
            stmt = stmt.where(Notification.read_at.is_(None))
        elif unread is False:
            stmt = stmt.where(Notification.read_at.is_not(None))
        return stmt

    async def mark_read(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None) -> int:
        """Mark a user's unread notifications read (the given ids, or all); how many."""
        stmt = (
            update(Notification)
            .where(self._of(user_id), Notification.read_at.is_(None))
            .values(read_at=utcnow())
        )
        if ids is not None:
            stmt = stmt.where(Notification.id.in_(list(ids)))
        result = await self.session.execute(stmt)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def unread_count(self, user_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            self.select(func.count(Notification.id)).where(
                Notification.user_id == user_id, Notification.read_at.is_(None)
            )
        )
        return int(count or 0)
