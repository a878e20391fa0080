"""Exemplars and their links, for one organization (and the score inputs of every org)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, contains_eager

from app.clips.access import visible_to
from app.clips.models import Clip, ClipStatus
from app.exemplars.models import Exemplar, ExemplarLink
from app.tenancy import Principal, TenantRepository
from app.users.models import User

Owner = aliased(User, name="owner")


class PrepExemplarRow(NamedTuple):
    """What the prep kit shows of an exemplar."""

    clip_id: uuid.UUID
    note: str
    score: float
    title: str
    skills: list[str]
    duration_ms: int | None
    media: dict[str, Any]
    owner_name: str


class ScoreInput(NamedTuple):
    id: uuid.UUID
    clip_id: uuid.UUID
    endorsed: bool
    clip_created_at: datetime


class ExemplarRepository(TenantRepository[Exemplar]):
    model = Exemplar

    def visible_conditions(self, principal: Principal) -> tuple[ColumnElement[bool], ...]:
        """Conditions (over Exemplar joined to its Clip) for exemplars the caller may see
        and play."""
        return (
            self.where_in_org(Clip),
            Clip.status == ClipStatus.ready,
            visible_to(principal),
        )

    def visible(self, principal: Principal) -> Select[Exemplar]:
        """Exemplars whose clip the caller may see and that can be played, with clip and
        owner."""
        return (
            select(Exemplar)
            .join(Exemplar.clip)
            .where(*self.visible_conditions(principal))
            .options(contains_eager(Exemplar.clip).joinedload(Clip.owner))
        )

    async def of_clip(self, clip_id: uuid.UUID) -> Exemplar | None:
        found: Exemplar | None = await self.session.scalar(
            self.select().where(Exemplar.clip_id == clip_id)
        )
        return found

    async def manual_link(
        self, clip_id: uuid.UUID, exemplar_clip_id: uuid.UUID
    ) -> ExemplarLink | None:
        found: ExemplarLink | None = await self.session.scalar(
            select(ExemplarLink).where(
                self.scoped(ExemplarLink),
                ExemplarLink.clip_id == clip_id,
                ExemplarLink.exemplar_clip_id == exemplar_clip_id,
            )
        )
        return found

    async def best_of_stage(
        self, principal: Principal, stage: str, limit: int
    ) -> list[PrepExemplarRow]:
        """The stage's best exemplars the caller may play, by score, as plain columns."""
        rows = await self.session.execute(
            select(
                Exemplar.clip_id,
                Exemplar.note,
                Exemplar.score,
                Clip.title,
                Clip.skills,
                Clip.duration_ms,
                Clip.media,
                Owner.name.label("owner_name"),
            )
            .join(Clip, Clip.id == Exemplar.clip_id)
            .join(Owner, Owner.id == Clip.owner_id)
            .where(*self.visible_conditions(principal), Clip.stage == stage)
            .order_by(Exemplar.score.desc(), Exemplar.id.desc())
            .limit(limit)
        )
        return [tuple.__new__(PrepExemplarRow, row) for row in rows]


# --- score refresh: a maintenance job over every org ----------------------------------------


async def score_inputs(
    session: AsyncSession, clip_ids: Sequence[uuid.UUID] | None
) -> list[ScoreInput]:
    """The exemplars of the given clips (or of every org) with what their score needs."""
    stmt = select(Exemplar.id, Exemplar.clip_id, Exemplar.endorsed, Clip.created_at).join(
        Clip, Clip.id == Exemplar.clip_id
    )
    if clip_ids is not None:
        stmt = stmt.where(Exemplar.clip_id.in_(list(clip_ids)))
    return [tuple.__new__(ScoreInput, row) for row in await session.execute(stmt)]


async def save_scores(session: AsyncSession, values: list[dict[str, Any]]) -> None:
    """Bulk update of exemplars' statistics and scores by primary key."""
    if values:
        await session.execute(update(Exemplar), values)
