"""Exemplar curation, the ranked library, and the links from every pitch to exemplars."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from app.clips.access import OVERSEERS
from app.clips.models import Clip, ClipKind, ClipStatus
from app.clips.service import get_clip, has_skill, matches_text
from app.db import utcnow
from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.events import service as events
from app.events import types as event_types
from app.exemplars.models import Exemplar, ExemplarAction, ExemplarEvent, ExemplarLink
from app.exemplars.present import exemplar_view
from app.exemplars.repository import ExemplarRepository, save_scores, score_inputs
from app.exemplars.scoring import exemplar_score
from app.feedback.repository import helpful_by_clip
from app.notifications.models import NotificationKind
from app.notifications.service import Cause, notify
from app.pagination import PageParams, SortKey, paginate
from app.tenancy import Principal
from app.users.models import Role
from app.views.repository import view_totals

# More exemplars than one stage of an org plausibly has; bounds the auto-link candidates.
MAX_LINK_CANDIDATES = 1000
_REFRESH_CHUNK = 500
_LIBRARY_ORDER = (SortKey(Exemplar.score, descending=True), SortKey(Exemplar.id, descending=True))


def ensure_can_curate(principal: Principal, clip: Clip) -> None:
    if principal.has_role(*OVERSEERS):
        return
    if principal.has_role(Role.top_performer) and clip.owner_id == principal.id:
        return
    raise Forbidden("Coaches and admins curate exemplars; top performers their own clips.")


def visible_exemplars(session: AsyncSession, principal: Principal) -> Select[Exemplar]:
    """Exemplars whose clip the caller may see and that can be played, with clip and owner."""
    return ExemplarRepository.of(session, principal).visible(principal)


async def mark(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, note: str | None
) -> Exemplar:
    clip = await get_clip(session, principal, clip_id)
    ensure_can_curate(principal, clip)
    if clip.status != ClipStatus.ready:
        raise Conflict("Only a clip that finished processing can be an exemplar.", code="not_ready")
    exemplar = await ExemplarRepository.of(session, principal).of_clip(clip.id)
    endorsed = principal.has_role(*OVERSEERS)
    if exemplar is None:
        exemplar = Exemplar(
            org_id=clip.org_id,
            clip_id=clip.id,
            note=note or "",
            marked_by_id=principal.id,
            marked_at=utcnow(),
            endorsed=endorsed,
        )
        session.add(exemplar)
    else:  # re-marking updates the note and records a coach's endorsement
        if note is not None:
            exemplar.note = note
        exemplar.marked_by_id = principal.id
        exemplar.endorsed = exemplar.endorsed or endorsed
    clip.is_exemplar = True
    session.add(
        ExemplarEvent(
            org_id=clip.org_id,
            clip_id=clip.id,
            actor_id=principal.id,
            action=ExemplarAction.marked,
            note=exemplar.note,
        )
    )
    await session.flush()
    await refresh_scores(session, clip_ids=[clip.id])
    marked = await get_exemplar(session, principal, clip.id)
    await events.record(
        session,
        org_id=clip.org_id,
        type=event_types.EXEMPLAR_MARKED,
        data=exemplar_view(marked, poster_url=None).model_dump(mode="json"),
        clip_id=clip.id,
    )
    return marked


async def unmark(session: AsyncSession, principal: Principal, clip_id: uuid.UUID) -> None:
    """Idempotent: unmarking a clip that is not an exemplar changes nothing."""
    clip = await get_clip(session, principal, clip_id)
    ensure_can_curate(principal, clip)
    exemplar = await ExemplarRepository.of(session, principal).of_clip(clip.id)
    clip.is_exemplar = False
    if exemplar is None:
        return
    await session.delete(exemplar)
    session.add(
        ExemplarEvent(
            org_id=clip.org_id,
            clip_id=clip.id,
            actor_id=principal.id,
            action=ExemplarAction.unmarked,
        )
    )
    await session.flush()
    await events.record(
        session,
        org_id=clip.org_id,
        type=event_types.EXEMPLAR_UNMARKED,
        data={"clip_id": str(clip.id), "stage": clip.stage, "unmarked_by": str(principal.id)},
        clip_id=clip.id,
    )


async def get_exemplar(session: AsyncSession, principal: Principal, clip_id: uuid.UUID) -> Exemplar:
    found = await session.scalar(
        visible_exemplars(session, principal)
        .where(Exemplar.clip_id == clip_id)
        .execution_options(populate_existing=True)
    )
    if found is None:
        raise NotFound("Exemplar not found.")
    return found


async def refresh_scores(
    session: AsyncSession,
    *,
    clip_ids: Sequence[uuid.UUID] | None = None,
    now: datetime | None = None,
) -> int:
    """Recompute the statistics and score of exemplars (the given ones, or all): distinct
    viewers and completions from clip_views (a completion as app.views.completion judges
    it: reported, and 90 % watched), helpful marks from their feedback."""
    now = now or utcnow()
    rows = await score_inputs(session, clip_ids)
    for start in range(0, len(rows), _REFRESH_CHUNK):
        chunk = rows[start : start + _REFRESH_CHUNK]
        ids = [r.clip_id for r in chunk]
        views = await view_totals(session, ids)
        helpful = await helpful_by_clip(session, ids)
        values = []
        for row in chunk:
            viewers, completed = views.get(row.clip_id, (0, 0))
            rate = round(completed / viewers, 4) if viewers else 0.0
            marks = helpful.get(row.clip_id, 0)
            values.append(
                {
                    "id": row.id,
                    "viewer_count": viewers,
                    "completion_rate": rate,
                    "helpful_count": marks,
                    "stats_at": now,
                    "score": exemplar_score(
                        endorsed=row.endorsed,
                        helpful=marks,
                        completion_rate=rate,
                        viewers=viewers,
                        age_days=(now - row.clip_created_at).total_seconds() / 86400,
                    ),
                }
            )
        await save_scores(session, values)
    return len(rows)


@dataclass(frozen=True)
class LibraryFilters:
    stage: str | None = None
    skill: str | None = None
    q: str | None = None


async def library(
    session: AsyncSession, principal: Principal, filters: LibraryFilters, page: PageParams
) -> tuple[list[Exemplar], str | None]:
    stmt = visible_exemplars(session, principal)
    if filters.stage:
        stmt = stmt.where(Clip.stage == filters.stage)
    if filters.skill:
        stmt = stmt.where(has_skill(filters.skill))
    if filters.q:
        stmt = stmt.where(matches_text(filters.q))
    return await paginate(session, stmt, _LIBRARY_ORDER, page)


# --- links from a clip to exemplars -------------------------------------------------------


@dataclass(frozen=True)
class Link:
    exemplar: Exemplar
    source: str  # "manual" | "auto"
    reason: str

    @property
    def score(self) -> float:
        return self.exemplar.score


def _auto_reason(clip: Clip, exemplar: Exemplar) -> str:
    shared = [s for s in clip.skills if s in set(exemplar.clip.skills)]
    reason = f"same stage: {clip.stage}"
    if shared:
        reason += f"; shares skills: {', '.join(shared)}"
    return reason


async def links_for_clip(
    session: AsyncSession, principal: Principal, clip: Clip, limit: int
) -> list[Link]:
    """Manual links first (in the order they were made), then the best exemplars of the
    clip's stage by skill overlap, then score. Computed on read, so they always follow the
    library and the clip's current stage and skills. Two statements whatever the size."""
    manual_rows = (
        await session.execute(
            visible_exemplars(session, principal)
            .add_columns(ExemplarLink)
            .join(
                ExemplarLink,
                and_(
                    ExemplarLink.exemplar_clip_id == Exemplar.clip_id,
                    ExemplarLink.clip_id == clip.id,
                ),
            )
            .options(joinedload(ExemplarLink.created_by))
            .order_by(ExemplarLink.created_at, ExemplarLink.id)
        )
    ).all()
    links = []
    for exemplar, link in manual_rows:
        chooser = link.created_by.name if link.created_by else "a colleague"
        links.append(Link(exemplar, "manual", f"chosen by {chooser}"))
    room = max(limit - len(links), 0)
    if room == 0:
        return links
    taken = {link.exemplar.clip_id for link in links} | {clip.id}
    candidates = (
        await session.scalars(
            visible_exemplars(session, principal)
            .where(Clip.stage == clip.stage, Clip.id != clip.id)
            .order_by(Exemplar.score.desc(), Exemplar.id.desc())
            .limit(MAX_LINK_CANDIDATES)
        )
    ).all()
    skills = set(clip.skills)
    ranked = sorted(
        (e for e in candidates if e.clip_id not in taken),
        key=lambda e: (-len(skills & set(e.clip.skills)), -e.score, e.id.int),
    )
    links += [Link(e, "auto", _auto_reason(clip, e)) for e in ranked[:room]]
    return links


def _ensure_can_choose_links(principal: Principal, clip: Clip) -> None:
    if clip.owner_id != principal.id and not principal.has_role(*OVERSEERS):
        raise Forbidden("Only the clip's owner, coaches and admins choose its exemplars.")


async def add_manual_link(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, exemplar_clip_id: uuid.UUID
) -> tuple[Link, bool]:
    """Link a clip to an exemplar by hand; returns the link and whether it was new."""
    clip = await get_clip(session, principal, clip_id)
    _ensure_can_choose_links(principal, clip)
    if exemplar_clip_id == clip.id:
        raise Unprocessable("A clip cannot link to itself.", code="self_link")
    exemplar = await session.scalar(
        visible_exemplars(session, principal).where(Exemplar.clip_id == exemplar_clip_id)
    )
    if exemplar is None:
        raise Unprocessable(
            "exemplar_id must be an exemplar of your organization.",
            code="not_an_exemplar",
            details=[{"loc": ["body", "exemplar_id"], "msg": "not an exemplar you can see"}],
        )
    existing = await ExemplarRepository.of(session, principal).manual_link(
        clip.id, exemplar.clip_id
    )
    if existing is None:
        session.add(
            ExemplarLink(
                org_id=clip.org_id,
                clip_id=clip.id,
                exemplar_clip_id=exemplar.clip_id,
                created_by_id=principal.id,
            )
        )
        await session.flush()
    return Link(exemplar, "manual", f"chosen by {principal.user.name}"), existing is None


async def remove_manual_link(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, exemplar_clip_id: uuid.UUID
) -> None:
    clip = await get_clip(session, principal, clip_id)
    _ensure_can_choose_links(principal, clip)
    link = await ExemplarRepository.of(session, principal).manual_link(clip.id, exemplar_clip_id)
    if link is None:
        raise NotFound("This clip has no manual link to that exemplar.")
    await session.delete(link)
    await session.flush()


async def notify_pitch_ready(session: AsyncSession, clip_id: uuid.UUID, limit: int) -> None:
    """Tell a pitch's owner it is ready, with the exemplars it links to (as the owner sees
    them). Runs in the transaction that marks the clip ready."""
    clip = await session.scalar(
        select(Clip).where(Clip.id == clip_id).options(joinedload(Clip.owner))
    )
    if clip is None or clip.kind != ClipKind.pitch or clip.deleted_at is not None:
        return
    links = await links_for_clip(session, Principal(user=clip.owner), clip, limit)
    cause = Cause(
        org_id=clip.org_id,
        actor_id=None,
        clip_id=clip.id,
        data={
            "clip_title": clip.title,
            "exemplars": [
                {
                    "clip_id": str(link.exemplar.clip_id),
                    "title": link.exemplar.clip.title,
                    "source": link.source,
                    "reason": link.reason,
                }
                for link in links
            ],
        },
    )
    await notify(session, cause, [(clip.owner_id, NotificationKind.pitch_ready)])
