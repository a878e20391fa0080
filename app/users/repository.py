"""Users of one organization (an email is unique within it; sign-in, which looks an email up
across organizations, is in app.auth)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func

from app.tenancy import TenantRepository
from app.users.models import Role, User


class UserRepository(TenantRepository[User]):
    model = User

    async def by_ids(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
        """The org's users among ``ids`` (active or not), by id: one query."""
        rows = await self.session.scalars(self.select().where(User.id.in_(list(ids))))
        return {user.id: user for user in rows.all()}

    async def email_taken(self, email: str) -> bool:
        """The organization has a user (active or not) with this lower-cased email."""
        found = await self.session.scalar(self.select(User.id).where(User.email == email))
        return found is not None

    async def active(self, user_id: uuid.UUID) -> User | None:
        found: User | None = await self.session.scalar(
            self.select().where(User.id == user_id, User.is_active)
        )
        return found

    def people(self, *, q: str | None = None, role: Role | None = None) -> Select[User]:
        """The org's active users, optionally those whose name contains ``q`` (any case)
        and who have ``role``."""
        stmt = self.select().where(User.is_active.is_(True))
        if q:
            stmt = stmt.where(User.name.icontains(q, autoescape=True))
        if role is not None:
            stmt = stmt.where(User.role == role)
        return stmt

    async def active_admin_count(self) -> int:
        count = await self.session.scalar(
            self.select(func.count(User.id)).where(
                User.role == Role.admin, User.is_active.is_(True)
            )
        )
        return int(count or 0)
