from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound
from app.stages.defaults import DEFAULT_STAGES
from app.stages.models import Skill, Stage
from app.stages.repository import StageRepository
from app.stages.schemas import SkillIn, StageCreate, StageUpdate
from app.tenancy import Principal

# Called in the admin's transaction when a stage's talk track (its skills' phrases to use and
# to avoid, in order) changed: (session, org_id, stage key). Wired by app.tasks.
TalkTrackHook = Callable[[AsyncSession, uuid.UUID, str], Awaitable[None]]
_talk_track_hooks: list[TalkTrackHook] = []


def on_talk_track_changed(hook: TalkTrackHook) -> None:
    if hook not in _talk_track_hooks:
        _talk_track_hooks.append(hook)


def _talk_track(stage: Stage) -> list[tuple[str, list[str], list[str]]]:
    return [(s.key, list(s.phrases_to_use), list(s.phrases_to_avoid)) for s in stage.skills]


def seed_default_stages(session: AsyncSession, org_id: uuid.UUID) -> None:
    for position, spec in enumerate(DEFAULT_STAGES):
        stage = Stage(
            org_id=org_id,
            key=str(spec["key"]),
            name=str(spec["name"]),
            description=str(spec["description"]),
            position=position,
        )
        skills = spec["skills"]
        assert isinstance(skills, list)
        stage.skills = [
            Skill(
                org_id=org_id,
                key=key,
                name=name,
                position=i,
                phrases_to_use=[],
                phrases_to_avoid=[],
            )
            for i, (key, name) in enumerate(skills)
        ]
        session.add(stage)


async def list_stages(session: AsyncSession, principal: Principal) -> list[Stage]:
    return await StageRepository.of(session, principal).ordered()


async def get_stage(session: AsyncSession, principal: Principal, key: str) -> Stage:
    stage = await StageRepository.of(session, principal).by_key(key)
    if stage is None:
        raise NotFound("Stage not found.")
    return stage


def _replace_skills(stage: Stage, skills: list[SkillIn]) -> None:
    existing = {s.key: s for s in stage.skills}
    kept: list[Skill] = []
    for position, spec in enumerate(skills):
        skill = existing.get(spec.key) or Skill(
            org_id=stage.org_id, key=spec.key, phrases_to_use=[], phrases_to_avoid=[]
        )
        skill.name = spec.name
        skill.position = position
        # Omitted phrases stay as they are: renaming or reordering skills keeps talk tracks.
        if spec.phrases_to_use is not None:
            skill.phrases_to_use = list(spec.phrases_to_use)
        if spec.phrases_to_avoid is not None:
            skill.phrases_to_avoid = list(spec.phrases_to_avoid)
        kept.append(skill)
    stage.skills = kept


async def create_stage(session: AsyncSession, principal: Principal, data: StageCreate) -> Stage:
    stages = StageRepository.of(session, principal)
    if await stages.key_exists(data.key):
        raise Conflict(f"A stage with key {data.key!r} already exists.", code="stage_exists")
    position = data.position
    if position is None:
        last = await stages.last_position()
        position = 0 if last is None else last + 1
    stage = Stage(
        org_id=principal.org_id,
        key=data.key,
        name=data.name,
        description=data.description,
        position=position,
    )
    stage.skills = []
    _replace_skills(stage, data.skills)
    session.add(stage)
    await session.flush()
    return stage


async def update_stage(
    session: AsyncSession, principal: Principal, key: str, data: StageUpdate
) -> Stage:
    stage = await get_stage(session, principal, key)
    if data.name is not None:
        stage.name = data.name
    if data.description is not None:
        stage.description = data.description
    if data.position is not None:
        stage.position = data.position
    talk_track = _talk_track(stage)
    if data.skills is not None:
        _replace_skills(stage, data.skills)
    await session.flush()
    if _talk_track(stage) != talk_track:
        for hook in _talk_track_hooks:
            await hook(session, stage.org_id, stage.key)
    return stage


async def skill_keys(session: AsyncSession, org_id: uuid.UUID, stage_key: str) -> set[str]:
    """The skill keys of one stage of an org (empty when the stage does not exist)."""
    return await StageRepository(session, org_id).skill_keys(stage_key)


async def stage_skills(session: AsyncSession, org_id: uuid.UUID, stage_key: str) -> list[Skill]:
    """One stage's skills in order, with their talk tracks (empty for an unknown stage)."""
    return await StageRepository(session, org_id).skills_of(stage_key)
