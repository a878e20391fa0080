"""Stages and their skills, for one organization."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from app.stages.models import Skill, Stage
from app.tenancy import TenantRepository


class StageName(NamedTuple):
    key: str
    name: str


class StageRepository(TenantRepository[Stage]):
    model = Stage

    def with_skills(self) -> Select[Any]:
        return self.select().options(selectinload(Stage.skills))

    async def ordered(self) -> list[Stage]:
        """Every stage with its skills, in the org's order."""
        stmt = self.with_skills().order_by(Stage.position, Stage.key)
        return list((await self.session.scalars(stmt)).all())

    async def by_key(self, key: str) -> Stage | None:
        found: Stage | None = (
            await self.session.scalars(self.with_skills().where(Stage.key == key))
        ).one_or_none()
        return found

    async def key_exists(self, key: str) -> bool:
        found = await self.session.scalar(self.select(Stage.id).where(Stage.key == key))
        return found is not None

    async def last_position(self) -> int | None:
        last: int | None = await self.session.scalar(self.select(func.max(Stage.position)))
        return last

    async def keys_and_names(self) -> list[StageName]:
        """(key, name) of every stage, in the org's order, without the skills."""
        rows = await self.session.execute(
            self.select(Stage.key, Stage.name).order_by(Stage.position, Stage.key)
        )
        return [StageName(key, name) for key, name in rows]

    async def skill_keys(self, stage_key: str) -> set[str]:
        """The skill keys of one stage (empty when the stage does not exist)."""
        rows = await self.session.scalars(
            select(Skill.key)
            .join(Stage, Stage.id == Skill.stage_id)
            .where(self.where_in_org(Skill), Stage.key == stage_key)
        )
        return set(rows.all())

    async def skills_of(self, stage_key: str) -> list[Skill]:
        """The skills of one stage, in order (empty when the stage does not exist)."""
        rows = await self.session.scalars(
            select(Skill)
            .join(Stage, Stage.id == Skill.stage_id)
            .where(self.where_in_org(Skill), Stage.key == stage_key)
            .order_by(Skill.position, Skill.key)
        )
        return list(rows.all())
