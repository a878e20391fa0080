from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.clips.schemas import ClipOut
from app.deps import PrincipalDep, SessionDep
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.views import service
from app.views.schemas import Progress, ViewerOut, ViewIn

router = APIRouter(tags=["views"])


@router.post(
    "/v1/clips/{clip_id}/views",
    summary="Report the caller's watch progress (idempotent upsert; send every few seconds)",
    response_model=Progress,
    responses=errors(401, 404, 409, 422),
)
async def record_view(
    clip_id: uuid.UUID, body: ViewIn, session: SessionDep, principal: PrincipalDep
) -> Progress:
    return service.progress_of(await service.record_view(session, principal, clip_id, body))


@router.get(
    "/v1/clips/{clip_id}/views",
    summary="Who watched a clip and how far, most recent first (owner, coaches, admins)",
    response_model=Page[ViewerOut],
    responses=errors(401, 403, 404, 422),
)
async def list_viewers(
    clip_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[ViewerOut]:
    views, cursor = await service.list_viewers(session, principal, clip_id, page)
    items = [
        ViewerOut(user_id=v.user_id, name=v.user.name, progress=service.progress_of(v))
        for v in views
    ]
    return Page[ViewerOut](items=items, next_cursor=cursor)


class HistoryItem(BaseModel):
    clip: ClipOut
    progress: Progress


@router.get(
    "/v1/me/history",
    summary="Clips the caller watched, most recent first, with progress (continue watching)",
    response_model=Page[HistoryItem],
    responses=errors(401, 422),
)
async def history(
    session: SessionDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> Page[HistoryItem]:
    views, cursor = await service.history(session, principal, page)
    stats = await service.stats_for(session, principal, [v.clip_id for v in views])
    items = [
        HistoryItem(clip=ClipOut.of(v.clip, stats.get(v.clip_id)), progress=service.progress_of(v))
        for v in views
    ]
    return Page[HistoryItem](items=items, next_cursor=cursor)
