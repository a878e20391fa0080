"""Watch progress (clip_views) of one organization."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager, joinedload

from app.clips.access import visible_to
from app.clips.models import Clip
from app.tenancy import Principal, TenantRepository
from app.views.completion import completed_sql
from app.views.models import ClipView


class ViewTally(NamedTuple):
    """A clip's view count and one viewer's progress on it (None when not watched)."""

    clip_id: uuid.UUID
    view_count: int
    position_ms: int | None
    watched_ms: int | None
    completed: int | None
    last_watched_at: datetime | None


class ViewRepository(TenantRepository[ClipView]):
    model = ClipView

    async def of_user(self, clip_id: uuid.UUID, user_id: uuid.UUID) -> ClipView | None:
        """A user's progress on a clip, read afresh (after an upsert)."""
        found: ClipView | None = await self.session.scalar(
            self.select()
            .where(ClipView.clip_id == clip_id, ClipView.user_id == user_id)
            .execution_options(populate_existing=True)
        )
        return found

    async def stats(self, clip_ids: Sequence[uuid.UUID], viewer_id: uuid.UUID) -> list[ViewTally]:
        """Per clip: its view count and the viewer's position, watched, completed (as
        `app.views.completion` judges it) and last watched time (None when the viewer has
        not watched it). One aggregate query."""
        mine = ClipView.user_id == viewer_id
        stmt = (
            self.select(
                ClipView.clip_id,
                func.count(ClipView.id),
                func.max(case((mine, ClipView.position_ms))),
                func.max(case((mine, ClipView.watched_ms))),
                func.max(case((and_(mine, completed_sql()), 1), (mine, 0))),
                func.max(case((mine, ClipView.last_watched_at))),
            )
            .join(Clip, Clip.id == ClipView.clip_id)
            .where(ClipView.clip_id.in_(list(clip_ids)), self.scoped(Clip))
            .group_by(ClipView.clip_id)
        )
        return [tuple.__new__(ViewTally, row) for row in await self.session.execute(stmt)]

    def viewers(self, clip_id: uuid.UUID) -> Select[Any]:
        """Who watched a clip, with the users loaded."""
        return self.select().where(ClipView.clip_id == clip_id).options(joinedload(ClipView.user))

    def history(self, principal: Principal) -> Select[Any]:
        """What the caller watched among clips they may still see, with the clips and their
        owners loaded (one statement)."""
        return (
            select(ClipView)
            .join(ClipView.clip)
            .where(
                self.where_in_org(Clip),
                ClipView.user_id == principal.id,
                visible_to(principal),
            )
            .options(contains_eager(ClipView.clip).joinedload(Clip.owner, innerjoin=True))
        )


async def view_totals(
    session: AsyncSession, clip_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """Distinct viewers and completions (as `app.views.completion` judges them) of each clip.
    Scoped by the clips given, not by an organization: exemplar statistics refresh every org."""
    rows = await session.execute(
        select(
            ClipView.clip_id,
            func.count(ClipView.id),
            func.sum(case((completed_sql(), 1), else_=0)),
        )
        .join(Clip, Clip.id == ClipView.clip_id)
        .where(ClipView.clip_id.in_(list(clip_ids)))
        .group_by(ClipView.clip_id)
    )
    return {clip_id: (int(viewers), int(completed or 0)) for clip_id, viewers, completed in rows}
