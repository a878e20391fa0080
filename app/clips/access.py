"""Who may see and change a clip: the rule lives here and nowhere else."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_

from app.clips.models import Clip, Visibility
from app.errors import Forbidden
from app.tenancy import Principal
from app.users.models import Role

# Roles that see every clip of their organization, private ones included.
OVERSEERS = (Role.coach, Role.admin)


def visible_to(principal: Principal) -> ColumnElement[bool]:
    """SQL filter for clips the caller may see (used with app.tenancy's org scoping).

    Review requests will widen this with "or the caller was asked to review it".
    """
    if principal.has_role(*OVERSEERS):
        return Clip.deleted_at.is_(None)
    return Clip.deleted_at.is_(None) & or_(
        Clip.visibility == Visibility.org, Clip.owner_id == principal.id
    )


def ensure_can_edit(principal: Principal, clip: Clip) -> None:
    if clip.owner_id != principal.id and not principal.has_role(Role.admin):
        raise Forbidden("Only the clip's owner or an admin may change it.")
