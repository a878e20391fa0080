"""Clips of one organization, as a caller may see them."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, func, update
from sqlalchemy.orm import joinedload

from app.clips.access import visible_to
from app.clips.models import Clip, ClipKind
from app.errors import NotFound
from app.tenancy import Principal, TenantRepository


class ClipRepository(TenantRepository[Clip]):
    model = Clip

    def visible(self, principal: Principal, *, with_owner: bool = False) -> Select[Clip]:
        """The org's clips that ``principal`` may see (never a deleted one); ``with_owner``
        loads each clip's owner in the same statement (what a clip's response shows)."""
        stmt = self.select().where(visible_to(principal))
        if with_owner:
            stmt = stmt.options(joinedload(Clip.owner, innerjoin=True))
        return stmt

    async def get_visible(
        self, principal: Principal, clip_id: uuid.UUID, *, with_owner: bool = False
    ) -> Clip:
        # Deleted, another org's, or private to someone else: all look like "not found".
        clip = await self.session.scalar(
            self.visible(principal, with_owner=with_owner).where(Clip.id == clip_id)
        )
        if clip is None:
            raise NotFound("Clip not found.")
        return clip

    async def is_own_feedback_clip(self, owner_id: uuid.UUID, clip_id: uuid.UUID) -> bool:
        """Whether ``clip_id`` is a live clip of kind feedback uploaded by ``owner_id`` (what a
        video reply may point at)."""
        found = await self.session.scalar(
            self.select(Clip.id).where(
                Clip.id == clip_id,
                Clip.owner_id == owner_id,
                Clip.kind == ClipKind.feedback,
                Clip.deleted_at.is_(None),
            )
        )
        return found is not None

    async def add_open_feedback(self, clip_id: uuid.UUID, step: int) -> None:
        """Keep ``open_feedback_count`` in step with the clip's unresolved threads (the
        feedback service calls this whenever a thread opens or closes)."""
        await self.session.execute(
            update(Clip)
            .where(self.where_in_org(), Clip.id == clip_id)
            .values(open_feedback_count=Clip.open_feedback_count + step)
            .execution_options(synchronize_session=False)
        )

    async def open_feedback_by_stage(self, owner_id: uuid.UUID) -> dict[str, int]:
        """Unresolved feedback threads on the owner's live clips, per stage."""
        rows = await self.session.execute(
            self.select(Clip.stage, func.sum(Clip.open_feedback_count))
            .where(
                Clip.owner_id == owner_id,
                Clip.deleted_at.is_(None),
                Clip.open_feedback_count > 0,
            )
            .group_by(Clip.stage)
        )
        return {stage: int(count) for stage, count in rows}
