from __future__ import annotations

import json
import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.deps import FreshAuthenticatedDep, PrincipalDep, SessionDep, SettingsDep
from app.feedback import service
from app.feedback.models import Feedback
from app.feedback.present import feedback_out, thread_fields
from app.feedback.schemas import (
    FeedbackCreate,
    FeedbackOut,
    FeedbackUpdate,
    HelpfulOut,
    ThreadOut,
)
from app.idempotency.service import idempotent
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.readcache.cache import ReadCache

router = APIRouter(tags=["feedback"])
JSON = "application/json"


@router.post(
    "/v1/clips/{clip_id}/feedback",
    summary="Add timestamped feedback to a clip, or reply to a thread",
    description="Answers `201` with `Location: /v1/feedback/{id}` (for a reply too: that URL "
    "answers with its thread). With an `Idempotency-Key`, a retry returns the first response "
    "(`Idempotent-Replayed: true`) and posts nothing new.",
    status_code=201,
    response_model=FeedbackOut,
    responses=errors(
        401,
        404,
        409,
        422,
        codes={
            409: ["not_viewable"],
            422: [
                "missing_timestamp",
                "position_out_of_range",
                "invalid_range",
                "unknown_skill",
                "invalid_parent",
                "invalid_mention",
                "mention_cannot_see_clip",
                "invalid_response_clip",
            ],
        },
    ),
)
async def create_feedback(
    clip_id: uuid.UUID,
    body: FeedbackCreate,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retries with the same key return the first response."),
    ] = None,
) -> JSONResponse:
    async def produce() -> tuple[int, dict[str, object]]:
        item = await service.create_feedback(
            session, principal, clip_id, body, max_points=settings.annotation_max_points
        )
        return 201, feedback_out(item).model_dump(mode="json")

    scope = f"POST /v1/clips/{clip_id}/feedback"
    response = await idempotent(
        session, principal, idempotency_key, scope, body.model_dump(mode="json"), produce
    )
    # From the body, so a replayed answer carries it too.
    response.headers["Location"] = f"/v1/feedback/{json.loads(bytes(response.body))['id']}"
    return response


@router.get(
    "/v1/clips/{clip_id}/feedback",
    summary="A clip's feedback threads in playback order, each with its replies",
    response_model=Page[ThreadOut],
    responses=errors(401, 404, 422),
)
async def list_feedback(
    clip_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    authenticated: FreshAuthenticatedDep,
    page: Annotated[PageParams, Depends(page_params)],
    resolved: bool | None = None,
    skill: Annotated[str | None, Query(max_length=64)] = None,
    author_id: uuid.UUID | None = None,
) -> Response:
    principal = authenticated.principal
    version = authenticated.read_version or 0
    # The caller's id and role decide what they see (visibility, their helpful marks); the
    # page is served again only while the org's read version is unchanged (app.readcache).
    pages: ReadCache[bytes] = request.app.state.feedback_pages
    key = (clip_id, principal.id, principal.role, resolved, skill, author_id, page)
    body = pages.get(key, version)
    if body is None:
        filters = service.FeedbackFilters(resolved=resolved, skill=skill, author_id=author_id)
        threads, cursor = await service.list_threads(session, principal, clip_id, filters, page)
        # Plain data serialized in one pass, in the same JSON form as the response model (the
        # tests validate pages against it): building models for hundreds of items would cost
        # more than the queries.
        page_out = {"items": [thread_fields(t) for t in threads], "next_cursor": cursor}
        body = orjson.dumps(page_out, option=orjson.OPT_UTC_Z)
        pages.put(key, version, body)
    return Response(body, media_type=JSON)


@router.get(
    "/v1/feedback/{feedback_id}",
    summary="A feedback thread with its replies (a reply's id answers with its thread)",
    description="The item as `GET /v1/clips/{clip_id}/feedback` lists it, for a "
    "notification's deep link. The id of a reply answers with the whole thread it belongs to "
    "(`parent_id` of the reply is the thread's `id`). Not found when the caller may not see "
    "the clip's feedback.",
    response_model=ThreadOut,
    responses=errors(401, 404, 422),
)
async def get_feedback(
    feedback_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> Response:
    thread = await service.get_thread(session, principal, feedback_id)
    return Response(orjson.dumps(thread_fields(thread), option=orjson.OPT_UTC_Z), media_type=JSON)


@router.patch(
    "/v1/feedback/{feedback_id}",
    summary="Edit your feedback (body, skill, annotation; position for a thread)",
    description="Only the fields sent change. `end_ms`, `skill` and `annotation` may be null "
    "(cleared); `body` and `timestamp_ms` may be left out but not null.",
    response_model=FeedbackOut,
    responses=errors(
        401,
        403,
        404,
        422,
        codes={422: ["position_out_of_range", "invalid_range", "unknown_skill"]},
    ),
)
async def update_feedback(
    feedback_id: uuid.UUID,
    body: FeedbackUpdate,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> FeedbackOut:
    item = await service.update_feedback(
        session, principal, feedback_id, body, max_points=settings.annotation_max_points
    )
    return feedback_out(item)


@router.delete(
    "/v1/feedback/{feedback_id}",
    summary="Delete feedback (author, coaches, admins); a thread with replies leaves a tombstone",
    status_code=204,
    responses=errors(401, 403, 404, 422),
)
async def delete_feedback(
    feedback_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> Response:
    await service.delete_feedback(session, principal, feedback_id)
    return Response(status_code=204)


@router.post(
    "/v1/feedback/{feedback_id}/resolve",
    summary="Mark a thread resolved (idempotent)",
    response_model=FeedbackOut,
    responses=errors(401, 403, 404, 422, codes={422: ["not_a_thread"]}),
)
async def resolve(
    feedback_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> FeedbackOut:
    return feedback_out(await service.set_resolved(session, principal, feedback_id, True))


@router.delete(
    "/v1/feedback/{feedback_id}/resolve",
    summary="Reopen a resolved thread (idempotent)",
    response_model=FeedbackOut,
    responses=errors(401, 403, 404, 422, codes={422: ["not_a_thread"]}),
)
async def reopen(
    feedback_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> FeedbackOut:
    return feedback_out(await service.set_resolved(session, principal, feedback_id, False))


@router.post(
    "/v1/feedback/{feedback_id}/reactions/helpful",
    summary="Mark feedback as helpful (once per user; repeating changes nothing)",
    response_model=HelpfulOut,
    responses=errors(401, 403, 404, 422),
)
async def mark_helpful(
    feedback_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> HelpfulOut:
    return _helpful(*await service.set_helpful(session, principal, feedback_id, True))


@router.delete(
    "/v1/feedback/{feedback_id}/reactions/helpful",
    summary="Take back your helpful mark (idempotent)",
    response_model=HelpfulOut,
    responses=errors(401, 404, 422),
)
async def unmark_helpful(
    feedback_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> HelpfulOut:
    return _helpful(*await service.set_helpful(session, principal, feedback_id, False))


def _helpful(item: Feedback, reacted: bool) -> HelpfulOut:
    return HelpfulOut(feedback_id=item.id, helpful_count=item.helpful_count, reacted_by_me=reacted)
