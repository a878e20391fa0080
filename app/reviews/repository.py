"""Review requests and scores of one organization."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Exists, Select, exists, select
from sqlalchemy.orm import joinedload, selectinload

from app.clips.models import Clip
from app.reviews.models import ReviewRequest, ReviewScore, ReviewStatus
from app.tenancy import TenantRepository

_LOAD = (
    joinedload(ReviewRequest.clip),
    joinedload(ReviewRequest.requester),
    joinedload(ReviewRequest.reviewer),
    selectinload(ReviewRequest.scores),
)


def asked_to_review(viewer_id: Any) -> Exists:
    """SQL: the viewer (a value or a bind parameter) was asked to review the clip of the
    enclosing query (``Clip``) and has not declined: such a reviewer may see a private clip
    (app.clips.access builds its visibility rule with this)."""
    return exists(
        select(ReviewRequest.id).where(
            ReviewRequest.clip_id == Clip.id,
            ReviewRequest.reviewer_id == viewer_id,
            ReviewRequest.status.in_((ReviewStatus.pending, ReviewStatus.completed)),
        )
    )


class ReviewRepository(TenantRepository[ReviewRequest]):
    model = ReviewRequest

    def on_live_clips(self) -> Select[ReviewRequest]:
        """The org's requests on live clips (Clip joined), with what a response shows."""
        return (
            self.select()
            .join(Clip, Clip.id == ReviewRequest.clip_id)
            .where(Clip.deleted_at.is_(None))
            .options(*_LOAD)
        )

    async def pending_exists(self, clip_id: uuid.UUID, reviewer_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            self.select(ReviewRequest.id).where(
                ReviewRequest.clip_id == clip_id,
                ReviewRequest.reviewer_id == reviewer_id,
                ReviewRequest.status == ReviewStatus.pending,
            )
        )
        return found is not None

    async def scores_of(self, subject_id: uuid.UUID) -> list[tuple[str, str, int, datetime]]:
        """(stage, skill, score, scored_at) of every score a user received."""
        rows = await self.session.execute(
            select(
                ReviewScore.stage, ReviewScore.skill, ReviewScore.score, ReviewScore.scored_at
            ).where(self.scoped(ReviewScore), ReviewScore.subject_id == subject_id)
        )
        return [(stage, skill, score, at) for stage, skill, score, at in rows]
