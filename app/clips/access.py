"""Who may see and change a clip: the rule lives here and nowhere else."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from app.clips.models import Clip, Visibility
from app.errors import Forbidden
from app.reviews.models import ReviewRequest
from app.reviews.repository import asked_to_review
from app.tenancy import ORG_PARAM, Principal, in_org, in_org_param
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


def _shared_with_org() -> ColumnElement[bool]:
    """``visible_to`` for a member known to the clip's organization only (no id, no role):
    a live clip shared with the org. Every member sees at least this."""
    return Clip.deleted_at.is_(None) & (Clip.visibility == Visibility.org)


_USER_ACCESS = select(User.org_id, User.role, User.is_active).where(
    User.id == bindparam("viewer_id")
)
_SHARED_CLIP = select(Clip.id).where(Clip.id == bindparam("clip_id"), _shared_with_org())


async def viewer_may_see(
    reader: AsyncSession | AsyncConnection, viewer_id: uuid.UUID | None, clip_id: uuid.UUID
) -> bool:
    """Whether the user ``viewer_id`` may see the clip now: an active user of the clip's
    organization under ``visible_to`` (role, review requests and visibility read afresh).
    ``None`` stands for an unidentified member of the clip's organization (an unbound play
    token): shared clips only. Two short indexed reads at most (a play token's re-check,
    app.playback.states)."""
    if viewer_id is None:
        return await reader.scalar(_SHARED_CLIP, {"clip_id": clip_id}) is not None
    user = (await reader.execute(_USER_ACCESS, {"viewer_id": viewer_id})).one_or_none()
    if user is None or not user.is_active:
        return False
    found = await reader.scalar(
        _visible_clip(user.role in OVERSEERS),
        {ORG_PARAM: user.org_id, "clip_id": clip_id, "viewer_id": viewer_id},
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


# --- the same rule in memory, for fan-out (the live event stream) -------------------------


class Viewer(NamedTuple):
    """Who is looking, as the visibility rule needs it."""

    id: uuid.UUID
    overseer: bool

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(user.id, user.role in OVERSEERS)


class ClipFacts(NamedTuple):
    """What the visibility rule reads of one clip (see ``visibility_facts``)."""

    owner_id: uuid.UUID
    org_visible: bool
    deleted: bool
    # Users asked to review the clip who have not declined (``asked_to_review``); filled
    # only for private clips, the only ones where it matters.
    reviewer_ids: frozenset[uuid.UUID]


def may_see(facts: ClipFacts, viewer: Viewer) -> bool:
    """``visible_to`` evaluated on loaded facts: the rule for many viewers of a few clips
    (tests/events/test_visibility_rule.py checks that both agree)."""
    if facts.deleted:
        return False
    return (
        viewer.overseer
        or facts.org_visible
        or facts.owner_id == viewer.id
        or viewer.id in facts.reviewer_ids
    )


async def visibility_facts(
    session: AsyncSession, org_id: uuid.UUID, clip_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, ClipFacts]:
    """``may_see``'s facts for the organization's clips among ``clip_ids`` (deleted ones
    included, marked as such): two queries at most, whatever the number of viewers.
    Clips of other organizations (and unknown ids) are absent."""
    if not clip_ids:
        return {}
    ids = list(set(clip_ids))
    rows = (
        await session.execute(
            select(Clip.id, Clip.owner_id, Clip.visibility, Clip.deleted_at).where(
                in_org(org_id, Clip), Clip.id.in_(ids)
            )
        )
    ).all()
    private = [row.id for row in rows if row.visibility != Visibility.org]
    reviewers: dict[uuid.UUID, set[uuid.UUID]] = {}
    if private:
        # Each request's reviewer, kept when ``asked_to_review`` holds for them (the rule
        # that grants access stays in app.reviews): a few rows per clip.
        request = aliased(ReviewRequest)
        pairs = await session.execute(
            select(Clip.id, request.reviewer_id)
            .join(request, request.clip_id == Clip.id)
            .where(Clip.id.in_(private), asked_to_review(request.reviewer_id))
            .distinct()
        )
        for clip_id, reviewer_id in pairs.all():
            reviewers.setdefault(clip_id, set()).add(reviewer_id)
    return {
        row.id: ClipFacts(
            owner_id=row.owner_id,
            org_visible=row.visibility == Visibility.org,
            deleted=row.deleted_at is not None,
            reviewer_ids=frozenset(reviewers.get(row.id, ())),
        )
        for row in rows
    }
