from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.clips import ingest, service
from app.clips.models import ClipKind, ClipStatus
from app.clips.schemas import ClipCreate, ClipCreated, ClipOut, ClipUpdate, UploadSummary
from app.deps import PrincipalDep, SessionDep, SettingsDep, StorageDep
from app.idempotency.service import idempotent
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.views.service import stats_for

router = APIRouter(prefix="/v1/clips", tags=["clips"])


@router.post(
    "",
    summary="Create a clip and start its resumable upload",
    status_code=201,
    response_model=ClipCreated,
    responses=errors(401, 409, 413, 422, 503),
)
async def create_clip(
    body: ClipCreate,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retries with the same key within 24 h return the first response."),
    ] = None,
) -> JSONResponse:
    async def produce() -> tuple[int, dict[str, object]]:
        created = await service.create_clip(session, storage, settings, principal, body)
        out = ClipCreated(
            clip=ClipOut.of(created.clip),
            upload=UploadSummary(
                id=created.upload.id,
                part_size=created.upload.part_size,
                part_count=created.upload.part_count,
                expires_at=created.upload.expires_at,
            ),
        )
        return 201, out.model_dump(mode="json")

    return await idempotent(
        session, principal, idempotency_key, "POST /v1/clips", body.model_dump(mode="json"), produce
    )


@router.get(
    "",
    summary="List clips the caller may see, newest first",
    response_model=Page[ClipOut],
    responses=errors(401, 422),
)
async def list_clips(
    session: SessionDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
    stage: Annotated[str | None, Query(max_length=64)] = None,
    kind: ClipKind | None = None,
    owner_id: uuid.UUID | None = None,
    status: ClipStatus | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Page[ClipOut]:
    filters = service.ClipFilters(stage=stage, kind=kind, owner_id=owner_id, status=status, q=q)
    clips, cursor = await service.list_clips(session, principal, filters, page)
    stats = await stats_for(session, principal, [c.id for c in clips])
    return Page[ClipOut](items=[ClipOut.of(c, stats.get(c.id)) for c in clips], next_cursor=cursor)


@router.get(
    "/{clip_id}", summary="Get a clip", response_model=ClipOut, responses=errors(401, 404, 422)
)
async def get_clip(clip_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> ClipOut:
    clip = await service.get_clip(session, principal, clip_id)
    stats = await stats_for(session, principal, [clip.id])
    return ClipOut.of(clip, stats.get(clip.id))


@router.patch(
    "/{clip_id}",
    summary="Edit a clip's title, description, stage, skills or visibility (owner or admin)",
    response_model=ClipOut,
    responses=errors(401, 403, 404, 422),
)
async def update_clip(
    clip_id: uuid.UUID, body: ClipUpdate, session: SessionDep, principal: PrincipalDep
) -> ClipOut:
    clip = await service.update_clip(session, principal, clip_id, body)
    stats = await stats_for(session, principal, [clip.id])
    return ClipOut.of(clip, stats.get(clip.id))


@router.delete(
    "/{clip_id}",
    summary="Delete a clip (gone at once; its media is purged by a background job)",
    status_code=204,
    responses=errors(401, 403, 404, 422),
)
async def delete_clip(clip_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> Response:
    await service.delete_clip(session, principal, clip_id)
    return Response(status_code=204)


@router.put(
    "/{clip_id}/source",
    summary="Upload the whole source file as the raw request body (small files, scripts)",
    status_code=202,
    response_model=ClipOut,
    responses=errors(401, 403, 404, 409, 413, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"video/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def put_source(
    clip_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    principal: PrincipalDep,
) -> ClipOut:
    clip = await service.get_clip(session, principal, clip_id)
    length = request.headers.get("content-length")
    clip = await ingest.put_source(
        session,
        storage,
        principal,
        clip,
        int(length) if length and length.isdigit() else None,
        request.stream(),
    )
    return ClipOut.of(clip)
