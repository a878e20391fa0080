"""Tenant scoping in one place: every read of org data goes through these helpers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import TenantMixin
from app.errors import NotFound
from app.users.models import Role, User

T = TypeVar("T", bound=TenantMixin)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user: User

    @property
    def id(self) -> uuid.UUID:
        return self.user.id

    @property
    def org_id(self) -> uuid.UUID:
        return self.user.org_id

    @property
    def role(self) -> Role:
        return self.user.role

    def has_role(self, *roles: Role) -> bool:
        return self.user.role in roles


def org_select(model: type[T], principal: Principal) -> Select[T]:
    """``SELECT model`` restricted to the caller's organization."""
    return select(model).where(model.org_id == principal.org_id)


async def get_in_org(
    session: AsyncSession,
    model: type[T],
    principal: Principal,
    obj_id: uuid.UUID,
    *,
    options: tuple[Any, ...] = (),
) -> T:
    """Load one row of the caller's org by id; another org's row is simply not found."""
    stmt = org_select(model, principal).where(model.id == obj_id)
    if options:
        stmt = stmt.options(*options)
    obj = (await session.scalars(stmt)).one_or_none()
    if obj is None:
        raise NotFound(f"{_label(model)} not found.")
    return obj


def _label(model: type[Any]) -> str:
    return str(getattr(model, "__label__", model.__name__))
