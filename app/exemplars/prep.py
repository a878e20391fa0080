"""The pre-meeting prep kit: one compact response a phone fetches minutes before a meeting.

Six statements whatever the org's size (the caller, stages, the caller's open feedback per
stage from clips.open_feedback_count, exemplars, tips, the caller's open feedback), each a
short walk down an index. Playback URLs
are signed in memory. The ETag covers the content, not the signatures, so a phone that asks
again gets 304 until something it would show has changed.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.clips.access import visible_to
from app.clips.models import Clip, ClipKind
from app.config import Settings
from app.db import utcnow
from app.errors import Unprocessable
from app.exemplars.models import Exemplar
from app.exemplars.schemas import PrepExemplar, PrepFeedback, PrepKit, PrepStage
from app.exemplars.service import exemplar_is_visible
from app.feedback.models import Feedback
from app.playback.service import sign_playback
from app.stages.models import Stage
from app.tenancy import Principal
from app.users.models import User

EXCERPT = 280


Owner = aliased(User, name="owner")
Author = aliased(User, name="author")


def _feedback_rows() -> Select[*tuple[Any, ...]]:
    """What a tip or an open item shows, as plain columns (no ORM objects or loader paths:
    they cost more than the queries here)."""
    return (
        select(
            Feedback.id,
            Feedback.clip_id,
            Feedback.timestamp_ms,
            Feedback.end_ms,
            Feedback.skill,
            Feedback.body,
            Feedback.helpful_count,
            Feedback.resolved_at,
            Feedback.created_at,
            Clip.title.label("clip_title"),
            Author.name.label("author_name"),
        )
        .join(Clip, Clip.id == Feedback.clip_id)
        .join(Author, Author.id == Feedback.author_id)
    )


def _newest_open(
    session: AsyncSession,
    principal: Principal,
    my_clips: tuple[ColumnElement[bool], ...],
    stage: str,
    limit: int,
) -> Select[Any]:
    """Ids of the newest unresolved threads on the caller's clips of a stage.

    On PostgreSQL: the newest ``limit`` of each clip (a LATERAL walk down the partial index
    ix_feedback_open_roots), then the newest overall, so the cost follows the number of
    the caller's clips, not of their open feedback. SQLite has no LATERAL; the plain form
    is fine at the sizes it serves.
    """
    open_root = (
        Feedback.org_id == principal.org_id,
        Feedback.parent_id.is_(None),
        Feedback.deleted_at.is_(None),
        Feedback.resolved_at.is_(None),
    )
    mine = (*my_clips, Clip.stage == stage, Clip.open_feedback_count > 0)
    if session.get_bind().dialect.name != "postgresql":
        return (
            select(Feedback.id)
            .join(Clip, Clip.id == Feedback.clip_id)
            .where(*open_root, *mine)
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
            .limit(limit)
        )
    per_clip = (
        select(Feedback.id, Feedback.created_at)
        .where(Feedback.clip_id == Clip.id, *open_root)
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(limit)
        .lateral("per_clip")
    )
    return (
        select(per_clip.c.id)
        .select_from(Clip)
        .join(per_clip, true())
        .where(*mine)
        .order_by(per_clip.c.created_at.desc(), per_clip.c.id.desc())
        .limit(limit)
    )


def _tip(settings: Settings, item: Row[Any]) -> PrepFeedback:
    body = item.body
    return PrepFeedback(
        id=item.id,
        clip_id=item.clip_id,
        clip_title=item.clip_title,
        timestamp_ms=item.timestamp_ms,
        end_ms=item.end_ms,
        skill=item.skill,
        author_name=item.author_name,
        body=body[:EXCERPT],
        truncated=len(body) > EXCERPT,
        helpful_count=item.helpful_count,
        resolved=item.resolved_at is not None,
        created_at=item.created_at,
        deep_link=(
            f"{settings.app_link_base}clips/{item.clip_id}"
            f"?t_ms={item.timestamp_ms}&feedback={item.id}"
        ),
    )


def content_etag(kit: PrepKit, media_versions: list[str]) -> str:
    """A strong validator over what the kit shows, leaving out what changes on every call
    (signed URLs, their expiry, the generation time) and the scores' slow recency drift (the
    order of the exemplars is kept). Media versions stand in for the URLs, so republished
    renditions change the ETag."""
    content: dict[str, Any] = kit.model_dump(
        mode="json", exclude={"generated_at", "urls_expire_at"}
    )
    for exemplar in content["exemplars"]:
        for key in ("hls_url", "mp4_url", "poster_url"):
            exemplar[key] = exemplar[key] is not None
        del exemplar["score"]
    content["media_versions"] = media_versions
    raw = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


async def prep_kit(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    base_url: str,
    stage: str | None,
    limit: int,
) -> tuple[PrepKit, str]:
    stages = (
        await session.execute(
            select(Stage.key, Stage.name)
            .where(Stage.org_id == principal.org_id)
            .order_by(Stage.position, Stage.key)
        )
    ).all()
    my_clips = (
        Clip.org_id == principal.org_id,
        Clip.owner_id == principal.id,
        Clip.deleted_at.is_(None),
    )
    open_counts: dict[str, int] = {
        key: int(count)
        for key, count in await session.execute(
            select(Clip.stage, func.sum(Clip.open_feedback_count))
            .where(*my_clips, Clip.open_feedback_count > 0)
            .group_by(Clip.stage)
        )
    }
    order = {key: i for i, (key, _name) in enumerate(stages)}
    ordered = sorted(stages, key=lambda s: (-open_counts.get(s.key, 0), order[s.key]))
    if stage is None:
        if not ordered:
            raise Unprocessable("Your organization has no stages.", code="unknown_stage")
        stage = ordered[0].key
    elif stage not in order:
        raise Unprocessable(
            f"Unknown stage {stage!r}.",
            code="unknown_stage",
            details=[{"loc": ["query", "stage"], "msg": "not a stage of this organization"}],
        )

    exemplars = (
        await session.execute(
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
            .where(*exemplar_is_visible(principal), Clip.stage == stage)
            .order_by(Exemplar.score.desc(), Exemplar.id.desc())
            .limit(limit)
        )
    ).all()
    tips = (
        await session.execute(
            _feedback_rows()
            .where(
                Feedback.org_id == principal.org_id,
                Clip.org_id == principal.org_id,
                Clip.stage == stage,
                Clip.kind.in_((ClipKind.pitch, ClipKind.exemplar)),
                visible_to(principal),
                Feedback.deleted_at.is_(None),
            )
            .order_by(Feedback.helpful_count.desc(), Feedback.created_at.desc(), Feedback.id.desc())
            .limit(limit)
        )
    ).all()
    mine = (
        await session.execute(
            _feedback_rows()
            .where(Feedback.id.in_(_newest_open(session, principal, my_clips, stage, limit)))
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        )
    ).all()

    now = time.time()
    signed = [
        (e, sign_playback(settings, e.clip_id, e.media, base_url, now=now)) for e in exemplars
    ]
    kit = PrepKit(
        stage=stage,
        generated_at=utcnow(),
        urls_expire_at=datetime.fromtimestamp(int(now) + settings.playback_ttl_s, UTC),
        stages=[
            PrepStage(key=s.key, name=s.name, my_open_feedback=open_counts.get(s.key, 0))
            for s in ordered
        ],
        exemplars=[
            PrepExemplar(
                clip_id=e.clip_id,
                title=e.title,
                owner_name=e.owner_name,
                skills=list(e.skills),
                duration_ms=e.duration_ms,
                note=e.note,
                score=e.score,
                hls_url=urls.hls_url,
                mp4_url=urls.mp4_url,
                poster_url=urls.poster_url,
            )
            for e, urls in signed
        ],
        tips=[_tip(settings, t) for t in tips],
        my_open_feedback=[_tip(settings, t) for t in mine],
    )
    versions = [str(e.media.get("version", "")) for e in exemplars]
    return kit, content_etag(kit, versions)
