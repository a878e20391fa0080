"""Review requests: ask a colleague for a scored review; they complete or decline it."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import Select, or_
from sqlalchemy.ext.asyncio import AsyncSession

from app.clips.access import OVERSEERS
from app.clips.models import Clip, ClipStatus
from app.clips.service import get_clip
from app.db import utcnow
from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.events import service as events
from app.events import types as event_types
from app.notifications.models import NotificationKind
from app.notifications.service import Cause, notify
from app.pagination import PageParams, SortKey, paginate
from app.reviews.models import ReviewRequest, ReviewScore, ReviewStatus
from app.reviews.present import review_out
from app.reviews.repository import ReviewRepository
from app.reviews.schemas import ReviewComplete, ReviewRequestCreate
from app.stages.service import skill_keys
from app.tenancy import Principal
from app.users.repository import UserRepository

_ORDER = (
    SortKey(ReviewRequest.created_at, descending=True),
    SortKey(ReviewRequest.id, descending=True),
)


class Box(enum.StrEnum):
    inbox = "inbox"  # asked of me
    outbox = "outbox"  # asked by me, or about my clips


def _cause(request: ReviewRequest, clip: Clip, actor_id: uuid.UUID) -> Cause:
    return Cause(
        org_id=clip.org_id,
        actor_id=actor_id,
        clip_id=clip.id,
        review_request_id=request.id,
        data={"clip_title": clip.title},
    )


async def _announce(session: AsyncSession, request: ReviewRequest, event_type: str) -> None:
    await events.record(
        session,
        org_id=request.org_id,
        type=event_type,
        data=review_out(request).model_dump(mode="json"),
        clip_id=request.clip_id,
    )


async def create_request(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, data: ReviewRequestCreate
) -> ReviewRequest:
    clip = await get_clip(session, principal, clip_id)
    if clip.owner_id != principal.id and not principal.has_role(*OVERSEERS):
        raise Forbidden("Only the clip's owner or a coach may request a review of it.")
    if clip.status == ClipStatus.failed:
        raise Conflict(
            "The clip failed processing; there is nothing to review.", code="clip_failed"
        )
    if data.reviewer_id in (clip.owner_id, principal.id):
        raise Unprocessable(
            "A clip cannot be reviewed by its owner or by the person asking.",
            code="self_review",
            details=[{"loc": ["body", "reviewer_id"], "msg": "choose someone else"}],
        )
    reviewer = await UserRepository.of(session, principal).active(data.reviewer_id)
    if reviewer is None:
        raise Unprocessable(
            "The reviewer is not an active user of your organization.",
            code="invalid_reviewer",
            details=[{"loc": ["body", "reviewer_id"], "msg": "unknown user"}],
        )
    if data.due_at is not None and data.due_at <= utcnow():
        raise Unprocessable(
            "due_at must be in the future.",
            code="invalid_due_at",
            details=[{"loc": ["body", "due_at"], "msg": "in the past"}],
        )
    if await ReviewRepository.of(session, principal).pending_exists(clip.id, reviewer.id):
        raise Conflict(
            "A review of this clip by this reviewer is already pending.",
            code="review_already_requested",
        )
    request = ReviewRequest(
        org_id=principal.org_id,
        clip_id=clip.id,
        requester_id=principal.id,
        reviewer_id=reviewer.id,
        status=ReviewStatus.pending,
        message=data.message,
        due_at=data.due_at,
    )
    session.add(request)
    await session.flush()
    await notify(
        session,
        _cause(request, clip, principal.id),
        [(reviewer.id, NotificationKind.review_requested)],
    )
    created = await get_request(session, principal, request.id)
    await _announce(session, created, event_types.REVIEW_REQUEST_CREATED)
    return created


def _involving(session: AsyncSession, principal: Principal) -> Select[ReviewRequest]:
    """Requests the caller takes part in: as reviewer, requester or the reviewed clip's owner
    (coaches and admins: every request of the org). Deleted clips' requests are gone."""
    stmt = ReviewRepository.of(session, principal).on_live_clips()
    if not principal.has_role(*OVERSEERS):
        stmt = stmt.where(
            or_(
                ReviewRequest.reviewer_id == principal.id,
                ReviewRequest.requester_id == principal.id,
                Clip.owner_id == principal.id,
            )
        )
    return stmt


async def get_request(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID
) -> ReviewRequest:
    found = await session.scalar(
        _involving(session, principal)
        .where(ReviewRequest.id == request_id)
        .execution_options(populate_existing=True)
    )
    if found is None:
        raise NotFound("Review request not found.")
    return found


@dataclass(frozen=True)
class ReviewFilters:
    box: Box
    status: ReviewStatus | None = None


async def list_requests(
    session: AsyncSession, principal: Principal, filters: ReviewFilters, page: PageParams
) -> tuple[list[ReviewRequest], str | None]:
    stmt = ReviewRepository.of(session, principal).on_live_clips()
    if filters.box == Box.inbox:
        stmt = stmt.where(ReviewRequest.reviewer_id == principal.id)
    else:
        stmt = stmt.where(
            or_(ReviewRequest.requester_id == principal.id, Clip.owner_id == principal.id)
        )
    if filters.status is not None:
        stmt = stmt.where(ReviewRequest.status == filters.status)
    return await paginate(session, stmt, _ORDER, page)


async def _pending_for_reviewer(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID
) -> ReviewRequest:
    request = await get_request(session, principal, request_id)
    if request.reviewer_id != principal.id:
        raise Forbidden("Only the reviewer may answer a review request.")
    if request.status != ReviewStatus.pending:
        raise Conflict(
            f"The review request is already {request.status}.", code="review_not_pending"
        )
    return request


def _requesters(
    request: ReviewRequest, kind: NotificationKind
) -> list[tuple[uuid.UUID, NotificationKind]]:
    return [(request.requester_id, kind), (request.clip.owner_id, kind)]


async def complete_request(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: ReviewComplete
) -> ReviewRequest:
    request = await _pending_for_reviewer(session, principal, request_id)
    clip = request.clip
    if not data.scores and not data.summary.strip():
        raise Unprocessable("A review needs scores, a summary, or both.", code="empty_review")
    known = await skill_keys(session, clip.org_id, clip.stage)
    unknown = sorted(k for k in data.scores if k not in known)
    if unknown:
        raise Unprocessable(
            f"Not skills of the stage {clip.stage!r}: {', '.join(unknown)}.",
            code="unknown_skill",
            details=[{"loc": ["body", "scores"], "unknown": unknown}],
        )
    now = utcnow()
    request.status = ReviewStatus.completed
    request.summary = data.summary
    request.responded_at = now
    for skill, score in sorted(data.scores.items()):
        request.scores.append(
            ReviewScore(
                org_id=clip.org_id,
                subject_id=clip.owner_id,
                stage=clip.stage,
                skill=skill,
                score=score,
                scored_at=now,
            )
        )
    await session.flush()
    await notify(
        session,
        _cause(request, clip, principal.id),
        _requesters(request, NotificationKind.review_completed),
    )
    await _announce(session, request, event_types.REVIEW_REQUEST_COMPLETED)
    return request


async def decline_request(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID, reason: str
) -> ReviewRequest:
    request = await _pending_for_reviewer(session, principal, request_id)
    request.status = ReviewStatus.declined
    request.decline_reason = reason
    request.responded_at = utcnow()
    await session.flush()
    await notify(
        session,
        _cause(request, request.clip, principal.id),
        _requesters(request, NotificationKind.review_declined),
    )
    await _announce(session, request, event_types.REVIEW_REQUEST_DECLINED)
    return request
