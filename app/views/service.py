"""Watch progress: upserts from players, per-clip viewer lists, the caller's history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.clips.access import OVERSEERS
from app.clips.service import get_clip
from app.db import utcnow, uuid7
from app.errors import Conflict, Forbidden, Unprocessable
from app.pagination import PageParams, SortKey, paginate
from app.playback.service import is_playable
from app.tenancy import Principal
from app.views.completion import is_completed
from app.views.models import ClipView
from app.views.repository import ViewRepository
from app.views.schemas import Progress, ViewIn, ViewStats

_ORDER = (SortKey(ClipView.last_watched_at, descending=True), SortKey(ClipView.id, descending=True))


def progress_of(view: ClipView, duration_ms: int | None) -> Progress:
    """A view as the API shows it; ``duration_ms`` is its clip's (the completion rule)."""
    return Progress(
        position_ms=view.position_ms,
        watched_ms=view.watched_ms,
        completed=is_completed(view.completed, view.watched_ms, duration_ms),
        last_watched_at=view.last_watched_at,
    )


@dataclass(frozen=True)
class Viewer:
    view: ClipView
    progress: Progress


async def record_view(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, data: ViewIn
) -> Progress:
    """Upsert the caller's progress in one statement: position follows the player,
    watched_ms only grows, the reported completion sticks (and counts once watched_ms
    reaches 90 % of the duration: app.views.completion). Repeating a report changes nothing
    else."""
    clip = await get_clip(session, principal, clip_id)
    if not is_playable(clip):
        raise Conflict("The clip has no playable rendition yet.", code="not_viewable")
    if clip.duration_ms is not None and data.position_ms > clip.duration_ms:
        raise Unprocessable(
            f"position_ms is beyond the clip's duration ({clip.duration_ms} ms).",
            code="position_out_of_range",
            details=[{"loc": ["body", "position_ms"], "max": clip.duration_ms}],
        )
    now = utcnow()
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ClipView).values(
        id=uuid7(),
        org_id=clip.org_id,
        clip_id=clip.id,
        user_id=principal.id,
        position_ms=data.position_ms,
        watched_ms=data.watched_ms,
        completed=data.completed,
        created_at=now,
        last_watched_at=now,
    )
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[ClipView.clip_id, ClipView.user_id],
        set_={
            "position_ms": excluded.position_ms,
            "watched_ms": case(
                (excluded.watched_ms > ClipView.watched_ms, excluded.watched_ms),
                else_=ClipView.watched_ms,
            ),
            "completed": or_(ClipView.completed, excluded.completed),
            "last_watched_at": excluded.last_watched_at,
        },
    )
    await session.execute(stmt)
    view = await ViewRepository.of(session, principal).of_user(clip.id, principal.id)
    assert view is not None
    return progress_of(view, clip.duration_ms)


async def stats_for(
    session: AsyncSession, principal: Principal, clip_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ViewStats]:
    """View counts and the caller's progress for a page of clips: one aggregate query."""
    if not clip_ids:
        return {}
    out: dict[uuid.UUID, ViewStats] = {}
    stats = await ViewRepository.of(session, principal).stats(clip_ids, principal.id)
    for clip_id, count, position, watched, completed, last in stats:
        progress = None
        if last is not None:
            progress = Progress(
                position_ms=position,
                watched_ms=watched,
                completed=bool(completed),
                last_watched_at=last,
            )
        out[clip_id] = ViewStats(view_count=int(count), mine=progress)
    return out


async def list_viewers(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, page: PageParams
) -> tuple[list[Viewer], str | None]:
    """Who watched a clip, with the viewers loaded."""
    clip = await get_clip(session, principal, clip_id)
    if clip.owner_id != principal.id and not principal.has_role(*OVERSEERS):
        raise Forbidden("Only the clip's owner, coaches and admins see who watched it.")
    stmt = ViewRepository.of(session, principal).viewers(clip.id)
    views, cursor = await paginate(session, stmt, _ORDER, page)
    return [Viewer(v, progress_of(v, clip.duration_ms)) for v in views], cursor


async def history(
    session: AsyncSession, principal: Principal, page: PageParams
) -> tuple[list[ClipView], str | None]:
    """What the caller watched, most recent first, among clips they may still see."""
    stmt = ViewRepository.of(session, principal).history(principal)
    return await paginate(session, stmt, _ORDER, page)
