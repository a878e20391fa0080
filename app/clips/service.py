from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, cast, func, or_
from sqlalchemy.ext.asyncio import AsyncSession

from app.clips import lifecycle
from app.clips.access import ensure_can_edit, is_visible
from app.clips.models import Clip, ClipKind, ClipStatus, clip_prefix
from app.clips.repository import ClipRepository
from app.clips.schemas import ClipCreate, ClipUpdate
from app.config import Settings
from app.db import utcnow, uuid7
from app.errors import NotFound, Unprocessable
from app.pagination import PageParams, SortKey, paginate
from app.stages.repository import StageRepository
from app.storage.base import Storage
from app.tenancy import Principal
from app.uploads.models import Upload
from app.uploads.service import check_size, start_upload


async def validate_taxonomy(
    session: AsyncSession, principal: Principal, stage_key: str, skills: list[str]
) -> None:
    """The stage must exist in the caller's org and every skill must belong to it."""
    stages = StageRepository.of(session, principal)
    if not await stages.key_exists(stage_key):
        raise Unprocessable(
            f"Unknown stage {stage_key!r}.",
            code="unknown_stage",
            details=[{"loc": ["body", "stage"], "msg": "not a stage of this organization"}],
        )
    if skills:
        known = await stages.skill_keys(stage_key)
        unknown = [s for s in skills if s not in known]
        if unknown:
            raise Unprocessable(
                f"Skills not in stage {stage_key!r}: {', '.join(unknown)}.",
                code="unknown_skill",
                details=[{"loc": ["body", "skills"], "unknown": unknown}],
            )


@dataclass(frozen=True)
class CreatedClip:
    clip: Clip
    upload: Upload


async def create_clip(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    principal: Principal,
    data: ClipCreate,
) -> CreatedClip:
    # Before anything is written: a refused size leaves no clip behind.
    check_size(settings, data.size_bytes)
    await validate_taxonomy(session, principal, data.stage, data.skills)
    clip_id = uuid7()
    clip = lifecycle.new_clip(
        id=clip_id,
        org_id=principal.org_id,
        owner_id=principal.id,
        owner=principal.user,
        title=data.title.strip(),
        description=data.description,
        kind=data.kind,
        stage=data.stage,
        skills=list(data.skills),
        visibility=data.visibility,
        filename=data.filename,
        content_type=data.content_type,
        size_bytes=data.size_bytes,
        sha256=data.sha256.lower() if data.sha256 else None,
        source_key=clip_prefix(principal.org_id, clip_id) + "source",
    )
    session.add(clip)
    await session.flush()
    upload = await start_upload(session, storage, settings, clip)
    return CreatedClip(clip=clip, upload=upload)


async def get_clip(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, *, with_owner: bool = False
) -> Clip:
    """A clip the caller may see; ``with_owner`` also loads its owner (for ClipOut)."""
    repo = ClipRepository.of(session, principal)
    return await repo.get_visible(principal, clip_id, with_owner=with_owner)


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matches_text(q: str) -> ColumnElement[bool]:
    """Case-insensitive substring search in a clip's title and description."""
    pattern = _like_pattern(q.lower())
    return or_(
        func.lower(Clip.title).like(pattern, escape="\\"),
        func.lower(Clip.description).like(pattern, escape="\\"),
    )


def has_skill(skill: str) -> ColumnElement[bool]:
    """Clips tagged with a skill (its key, quoted, inside the JSON list: works on every
    backend, and keys cannot contain quotes)."""
    return cast(Clip.skills, String).like(_like_pattern(f'"{skill}"'), escape="\\")


async def ensure_visible(session: AsyncSession, principal: Principal, clip_id: uuid.UUID) -> None:
    """get_clip's check without loading the row, for reads that only need to know."""
    if not await is_visible(session, principal, clip_id):
        raise NotFound("Clip not found.")


@dataclass(frozen=True)
class ClipFilters:
    stage: str | None = None
    kind: ClipKind | None = None
    owner_id: uuid.UUID | None = None
    status: ClipStatus | None = None
    q: str | None = None


async def list_clips(
    session: AsyncSession, principal: Principal, filters: ClipFilters, page: PageParams
) -> tuple[list[Clip], str | None]:
    stmt = ClipRepository.of(session, principal).visible(principal, with_owner=True)
    if filters.stage:
        stmt = stmt.where(Clip.stage == filters.stage)
    if filters.kind:
        stmt = stmt.where(Clip.kind == filters.kind)
    if filters.owner_id:
        stmt = stmt.where(Clip.owner_id == filters.owner_id)
    if filters.status:
        stmt = stmt.where(Clip.status == filters.status)
    if filters.q:
        stmt = stmt.where(matches_text(filters.q))
    keys = [SortKey(Clip.created_at, descending=True), SortKey(Clip.id, descending=True)]
    return await paginate(session, stmt, keys, page)


async def update_clip(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, data: ClipUpdate
) -> Clip:
    clip = await get_clip(session, principal, clip_id, with_owner=True)
    ensure_can_edit(principal, clip)
    if data.stage is not None or data.skills is not None:
        stage = data.stage if data.stage is not None else clip.stage
        skills = data.skills if data.skills is not None else list(clip.skills)
        await validate_taxonomy(session, principal, stage, skills)
        clip.stage = stage
        clip.skills = list(skills)
    if data.title is not None:
        clip.title = data.title.strip()
    if data.description is not None:
        clip.description = data.description
    if data.visibility is not None:
        clip.visibility = data.visibility
    clip.updated_at = utcnow()
    await session.flush()
    return clip


async def delete_clip(session: AsyncSession, principal: Principal, clip_id: uuid.UUID) -> None:
    """Soft delete now (every read filters on deleted_at); a job purges the media."""
    clip = await get_clip(session, principal, clip_id)
    ensure_can_edit(principal, clip)
    await lifecycle.delete(session, clip)
