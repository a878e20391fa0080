"""Clips of one organization, as a caller may see them."""

from __future__ import annotations

import uuid

from sqlalchemy import Select

from app.clips.access import visible_to
from app.clips.models import Clip
from app.errors import NotFound
from app.tenancy import Principal, TenantRepository


class ClipRepository(TenantRepository[Clip]):
    model = Clip

    def visible(self, principal: Principal) -> Select[Clip]:
        """The org's clips that ``principal`` may see (never a deleted one)."""
        return self.select().where(visible_to(principal))

    async def get_visible(self, principal: Principal, clip_id: uuid.UUID) -> Clip:
        # Deleted, another org's, or private to someone else: all look like "not found".
        clip = await self.session.scalar(self.visible(principal).where(Clip.id == clip_id))
        if clip is None:
            raise NotFound("Clip not found.")
        return clip
