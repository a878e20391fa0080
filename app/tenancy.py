"""Tenant scoping in one place: every read of org data starts from a statement built here.

Each domain's ``repository.py`` subclasses :class:`TenantRepository` for its model; the
repository is made for one organization and every statement it starts is already scoped to
it. The only ``org_id ==`` comparisons of the domains are written in this module:
:func:`in_org` (a value) and :func:`in_org_param` (a bind parameter, for statements built
once at import).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar, overload

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import TenantMixin
from app.errors import NotFound
from app.users.models import Role, User

T = TypeVar("T", bound=TenantMixin)
M = TypeVar("M", bound=TenantMixin)

ORG_PARAM = "org_id"


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


def in_org(org_id: uuid.UUID, *models: type[TenantMixin]) -> ColumnElement[bool]:
    """Rows of each of ``models`` (the scoped model and the tenant tables joined to it)
    belong to ``org_id``."""
    return and_(*(model.org_id == org_id for model in models))


def in_org_param(*models: type[TenantMixin]) -> ColumnElement[bool]:
    """As :func:`in_org` with the organization as the bind parameter ``org_id``: for
    statements built once at import and run with ``{"org_id": ...}``."""
    org: BindParameter[uuid.UUID] = bindparam(ORG_PARAM)
    return and_(*(model.org_id == org for model in models))


class TenantRepository(Generic[M]):
    """Reads and writes of one tenant model for one organization.

    Subclasses set ``model`` and add their domain's queries, each starting from
    :meth:`select` (or :meth:`where_in_org` for columns and joined tenant tables), so no
    query of the domain can forget the organization.
    """

    model: type[M]

    def __init__(self, session: AsyncSession, org_id: uuid.UUID) -> None:
        self.session = session
        self.org_id = org_id

    @classmethod
    def of(cls, session: AsyncSession, principal: Principal) -> Self:
        """The repository of the caller's organization."""
        return cls(session, principal.org_id)

    def where_in_org(self, *joined: type[TenantMixin]) -> ColumnElement[bool]:
        """The scope condition for this model and any tenant tables joined to it."""
        return in_org(self.org_id, self.model, *joined)

    def scoped(self, *models: type[TenantMixin]) -> ColumnElement[bool]:
        """The scope condition for other tenant tables (joined, or written alongside)."""
        return in_org(self.org_id, *models)

    @overload
    def select(self) -> Select[M]: ...

    @overload
    def select(self, column: Any, /, *columns: Any) -> Select[*tuple[Any, ...]]: ...

    def select(self, *columns: Any) -> Select[Any]:
        """``SELECT model`` (or the given columns) of this organization."""
        return select(*(columns or (self.model,))).where(self.where_in_org())

    async def find(self, obj_id: uuid.UUID, *, options: tuple[Any, ...] = ()) -> M | None:
        stmt = self.select().where(self.model.id == obj_id)
        if options:
            stmt = stmt.options(*options)
        found: M | None = (await self.session.scalars(stmt)).one_or_none()
        return found

    async def get(self, obj_id: uuid.UUID, *, options: tuple[Any, ...] = ()) -> M:
        """One row of this organization by id; another org's row is simply not found."""
        found = await self.find(obj_id, options=options)
        if found is None:
            raise NotFound(f"{_label(self.model)} not found.")
        return found


def _label(model: type[Any]) -> str:
    return str(getattr(model, "__label__", model.__name__))
