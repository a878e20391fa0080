from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from app.clips.present import clip_out
from app.clips.schemas import ClipOut
from app.deps import PrincipalDep, SessionDep, SettingsDep, public_base_url
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.views import service
from app.views.schemas import Progress, ViewerOut, ViewIn

router = APIRouter(tags=["views"])


@router.post(
    "/v1/clips/{clip_id}/views",
    summary="Report the caller's watch progress (idempotent upsert; send every few seconds)",
    response_model=Progress,
    responses=errors(
        401, 404, 409, 422, codes={409: ["not_viewable"], 422: ["position_out_of_range"]}
    ),
)
async def record_view(
    clip_id: uuid.UUID, body: ViewIn, session: SessionDep, principal: PrincipalDep
) -> Progress:
    return await service.record_view(session, principal, clip_id, body)


@router.get(
    "/v1/clips/{clip_id}/views",
    summary="Who watched a clip and how far, most recent first (owner, coaches, admins)",
    response_model=Page[ViewerOut],
    responses=errors(401, 403, 404, 422, codes={422: ["invalid_cursor"]}),
)
async def list_viewers(
    clip_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ViewerOut]:
    viewers, cursor = await service.list_viewers(session, principal, clip_id, page)
    items = [
        ViewerOut(user_id=v.view.user_id, name=v.view.user.name, progress=v.progress)
        for v in viewers
    ]
    return Page[ViewerOut](items=items, next_cursor=cursor)


class HistoryItem(BaseModel):
    clip: ClipOut = Field(
        description="With its owner, `duration_ms` and a signed `poster_url`: a row renders "
        "without another request."
    )
    progress: Progress


@router.get(
    "/v1/me/history",
    summary="Clips the caller watched, most recent first, with progress (continue watching)",
    response_model=Page[HistoryItem],
    responses=errors(401, 422, codes={422: ["invalid_cursor"]}),
)
async def history(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[HistoryItem]:
    views, cursor = await service.history(session, principal, page)
    stats = await service.stats_for(session, principal, [v.clip_id for v in views])
    base = public_base_url(request)
    items = [
        HistoryItem(
            clip=clip_out(v.clip, settings, base, stats.get(v.clip_id), viewer_id=principal.id),
            progress=service.progress_of(v, v.clip.duration_ms),
        )
        for v in views
    ]
    return Page[HistoryItem](items=items, next_cursor=cursor)
