"""The pre-meeting prep kit: one compact response a phone fetches minutes before a meeting.

Seven statements whatever the org's size (the caller with its organization's read version
(app.auth.caller), stages, the caller's open feedback per stage from
clips.open_feedback_count, exemplars, tips, the caller's open feedback, and the delivery
figures: the caller's newest analysed pitch of the stage with the analyses of the stage's
exemplars), each a short walk down an index. Playback URLs
are signed in memory. The ETag covers the content, not the signatures, so a phone that asks
again gets 304 until something it would show has changed (a new analysis included: its
figures and time are part of the content). The router keeps a caller's kit while the read
version is unchanged (app.readcache) and signs its URLs again for each answer
(``signed_again``).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.clips.models import Clip
from app.clips.repository import ClipRepository
from app.config import Settings
from app.db import utcnow
from app.errors import Unprocessable
from app.exemplars.models import Exemplar
from app.exemplars.repository import ExemplarRepository, PrepExemplarRow
from app.exemplars.schemas import PrepExemplar, PrepFeedback, PrepKit, PrepStage
from app.feedback.repository import FeedbackRepository, FeedbackTip
from app.playback.service import sign_playback
from app.speech_analysis.delivery import prep_delivery
from app.stages.repository import StageRepository
from app.tenancy import Principal

EXCERPT = 280


def _tip(settings: Settings, item: FeedbackTip) -> PrepFeedback:
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


def _stage_exemplar_ids(
    exemplars: ExemplarRepository, principal: Principal, stage: str
) -> Select[uuid.UUID]:
    """The clips of the stage's exemplars the caller may play (all of them, not only the
    kit's best): the exemplars whose delivery the kit's medians are over."""
    return (
        select(Exemplar.clip_id)
        .join(Clip, Clip.id == Exemplar.clip_id)
        .where(*exemplars.visible_conditions(principal), Clip.stage == stage)
    )


@dataclass(frozen=True)
class PrepContent:
    """A kit as read, its ETag, and the exemplars' rows (to sign their URLs again)."""

    kit: PrepKit
    etag: str
    exemplars: list[PrepExemplarRow]


async def read_prep(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    base_url: str,
    stage: str | None,
    limit: int,
) -> PrepContent:
    """The caller's kit for ``stage`` (or their first stage), its URLs signed now."""
    stages = await StageRepository.of(session, principal).keys_and_names()
    feedback = FeedbackRepository.of(session, principal)
    open_counts = await ClipRepository.of(session, principal).open_feedback_by_stage(principal.id)
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

    exemplar_repository = ExemplarRepository.of(session, principal)
    exemplars = await exemplar_repository.best_of_stage(principal, stage, limit)
    tips = await feedback.tips(principal, stage, limit)
    mine = await feedback.newest_open_on_clips_of(principal.id, stage, limit)
    delivery = await prep_delivery(
        session, principal, stage, _stage_exemplar_ids(exemplar_repository, principal, stage)
    )

    now = time.time()
    signed = [
        (e, sign_playback(settings, e.clip_id, e.media, base_url, viewer_id=principal.id, now=now))
        for e in exemplars
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
        delivery=delivery,
    )
    versions = [str(e.media.get("version", "")) for e in exemplars]
    return PrepContent(kit, content_etag(kit, versions), exemplars)


def signed_again(
    content: PrepContent, settings: Settings, base_url: str, principal: Principal
) -> PrepKit:
    """``content``'s kit with its URLs signed now: what ``read_prep`` would answer now while
    nothing the kit shows has changed (a kept kit's signatures would be expiring)."""
    now = time.time()
    exemplars = []
    for shown, row in zip(content.kit.exemplars, content.exemplars, strict=True):
        urls = sign_playback(
            settings, row.clip_id, row.media, base_url, viewer_id=principal.id, now=now
        )
        exemplars.append(
            shown.model_copy(
                update={
                    "hls_url": urls.hls_url,
                    "mp4_url": urls.mp4_url,
                    "poster_url": urls.poster_url,
                }
            )
        )
    return content.kit.model_copy(
        update={
            "generated_at": utcnow(),
            "urls_expire_at": datetime.fromtimestamp(int(now) + settings.playback_ttl_s, UTC),
            "exemplars": exemplars,
        }
    )
