from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse

from app.deps import PrincipalDep, SessionDep
from app.idempotency.service import idempotent
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.reviews import service
from app.reviews.models import ReviewStatus
from app.reviews.present import review_out
from app.reviews.profile import skill_profile
from app.reviews.schemas import (
    ReviewComplete,
    ReviewDecline,
    ReviewRequestCreate,
    ReviewRequestOut,
    SkillProfile,
)

router = APIRouter(tags=["reviews"])


@router.post(
    "/v1/clips/{clip_id}/review-requests",
    summary="Ask a colleague to review a clip (owner or coach); they may then see it",
    description="Answers `201` with `Location: /v1/review-requests/{id}`. With an "
    "`Idempotency-Key`, a retry returns the first response (`Idempotent-Replayed: true`) and "
    "asks nothing new.",
    status_code=201,
    response_model=ReviewRequestOut,
    responses=errors(
        401,
        403,
        404,
        409,
        422,
        codes={
            409: ["clip_failed", "review_already_requested"],
            422: ["self_review", "invalid_reviewer", "invalid_due_at"],
        },
    ),
)
async def create_request(
    clip_id: uuid.UUID,
    body: ReviewRequestCreate,
    session: SessionDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retries with the same key return the first response."),
    ] = None,
) -> JSONResponse:
    async def produce() -> tuple[int, dict[str, object]]:
        request = await service.create_request(session, principal, clip_id, body)
        return 201, review_out(request).model_dump(mode="json")

    scope = f"POST /v1/clips/{clip_id}/review-requests"
    response = await idempotent(
        session, principal, idempotency_key, scope, body.model_dump(mode="json"), produce
    )
    # From the body, so a replayed answer carries it too.
    response.headers["Location"] = f"/v1/review-requests/{json.loads(bytes(response.body))['id']}"
    return response


@router.get(
    "/v1/review-requests",
    summary="Review requests asked of me (inbox) or by me and about my clips (outbox)",
    response_model=Page[ReviewRequestOut],
    responses=errors(401, 422),
)
async def list_requests(
    session: SessionDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
    box: service.Box = service.Box.inbox,
    status: ReviewStatus | None = None,
) -> Page[ReviewRequestOut]:
    filters = service.ReviewFilters(box=box, status=status)
    requests, cursor = await service.list_requests(session, principal, filters, page)
    return Page[ReviewRequestOut](items=[review_out(r) for r in requests], next_cursor=cursor)


@router.get(
    "/v1/review-requests/{request_id}",
    summary="Get a review request you take part in",
    response_model=ReviewRequestOut,
    responses=errors(401, 404, 422),
)
async def get_request(
    request_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> ReviewRequestOut:
    return review_out(await service.get_request(session, principal, request_id))


@router.post(
    "/v1/review-requests/{request_id}/complete",
    summary="Complete a review with rubric scores (1..5 per skill of the clip's stage)",
    response_model=ReviewRequestOut,
    responses=errors(
        401,
        403,
        404,
        409,
        422,
        codes={409: ["review_not_pending"], 422: ["empty_review", "unknown_skill"]},
    ),
)
async def complete_request(
    request_id: uuid.UUID, body: ReviewComplete, session: SessionDep, principal: PrincipalDep
) -> ReviewRequestOut:
    return review_out(await service.complete_request(session, principal, request_id, body))


@router.post(
    "/v1/review-requests/{request_id}/decline",
    summary="Decline a review request",
    response_model=ReviewRequestOut,
    responses=errors(401, 403, 404, 409, 422, codes={409: ["review_not_pending"]}),
)
async def decline_request(
    request_id: uuid.UUID, body: ReviewDecline, session: SessionDep, principal: PrincipalDep
) -> ReviewRequestOut:
    return review_out(await service.decline_request(session, principal, request_id, body.reason))


@router.get(
    "/v1/users/{user_id}/skills",
    summary="A user's skill profile by stage (the user, coaches, admins)",
    response_model=SkillProfile,
    tags=["skills"],
    responses=errors(401, 403, 404, 422),
)
async def get_skill_profile(
    user_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> SkillProfile:
    return await skill_profile(session, principal, user_id)
