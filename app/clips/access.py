"""Who may see and change a clip: the rule lives here and nowhere else."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clips.models import Clip, Visibility
from app.errors import Forbidden
from app.reviews.repository import asked_to_review
from app.tenancy import ORG_PARAM, Principal, in_org_param
from app.users.models import Role, User

# Roles that see every clip of their organization, private ones included.
OVERSEERS = (Role.coach, Role.admin)


def visible_to(principal: Principal) -> ColumnElement[bool]:
    """SQL filter for clips the caller may see (used with app.tenancy's org scoping).

    Everyone sees the org's shared clips and their own; coaches and admins see every clip;
    a colleague asked for a review sees that clip, private or not, while the request is
    pending and after completing it (declining gives the access back).
    """
    return _visibility(principal.has_role(*OVERSEERS), principal.id)


def _visibility(overseer: bool, viewer_id: Any) -> ColumnElement[bool]:
    """`visible_to` for a viewer id given as a value or as a bind parameter."""
    if overseer:
        return Clip.deleted_at.is_(None)
    return Clip.deleted_at.is_(None) & or_(
        Clip.visibility == Visibility.org, Clip.owner_id == viewer_id, asked_to_review(viewer_id)
    )


@functools.cache
def _visible_clip(overseer: bool) -> Select[uuid.UUID]:
    # Built once per kind of viewer: checked on nearly every request about a clip, and
    # building the statement costs more than running it.
    return select(Clip.id).where(
        in_org_param(Clip),
        Clip.id == bindparam("clip_id"),
        _visibility(overseer, bindparam("viewer_id")),
    )


async def is_visible(session: AsyncSession, principal: Principal, clip_id: uuid.UUID) -> bool:
    """Whether the caller may see this clip of their organization."""
    found = await session.scalar(
        _visible_clip(principal.has_role(*OVERSEERS)),
        {ORG_PARAM: principal.org_id, "clip_id": clip_id, "viewer_id": principal.id},
    )
    return found is not None


def ensure_can_edit(principal: Principal, clip: Clip) -> None:
    if clip.owner_id != principal.id and not principal.has_role(Role.admin):
        raise Forbidden("Only the clip's owner or an admin may change it.")


async def can_see(session: AsyncSession, user: User, clip: Clip) -> bool:
    """Whether another user of the clip's org may see it (e.g. before mentioning them)."""
    if user.org_id != clip.org_id or not user.is_active:
        return False
    found = await session.scalar(
        select(Clip.id).where(Clip.id == clip.id, visible_to(Principal(user=user)))
    )
    return found is not None
