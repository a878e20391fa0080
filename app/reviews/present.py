"""A review request as the API shows it: for responses and for the events that carry it."""

from __future__ import annotations

from app.db import utcnow
from app.reviews.models import ReviewRequest, ReviewStatus
from app.reviews.schemas import ReviewedClip, ReviewRequestOut
from app.users.schemas import PersonOut


def review_out(request: ReviewRequest) -> ReviewRequestOut:
    clip = request.clip
    return ReviewRequestOut(
        id=request.id,
        clip=ReviewedClip(
            id=clip.id,
            title=clip.title,
            stage=clip.stage,
            status=clip.status,
            owner_id=clip.owner_id,
        ),
        requester=PersonOut.model_validate(request.requester),
        reviewer=PersonOut.model_validate(request.reviewer),
        status=request.status,
        message=request.message,
        due_at=request.due_at,
        overdue=(
            request.status == ReviewStatus.pending
            and request.due_at is not None
            and request.due_at < utcnow()
        ),
        scores={s.skill: s.score for s in request.scores},
        summary=request.summary,
        decline_reason=request.decline_reason,
        responded_at=request.responded_at,
        created_at=request.created_at,
    )
