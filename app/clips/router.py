from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.clips import ingest, service
from app.clips.models import ClipKind, ClipStatus
from app.clips.present import clip_out
from app.clips.schemas import (
    ClipCreate,
    ClipCreated,
    ClipOut,
    ClipUpdate,
    UploadRestart,
    UploadSummary,
)
from app.deps import PrincipalDep, SessionDep, SettingsDep, StorageDep, public_base_url
from app.idempotency.service import idempotent
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.views.service import stats_for

router = APIRouter(prefix="/v1/clips", tags=["clips"])

# Error codes beyond each status's defaults (app.openapi_meta).
_TAXONOMY = ["unknown_stage", "unknown_skill"]
_IDEMPOTENCY = ["invalid_idempotency_key", "idempotency_key_reused"]
IDEMPOTENCY_HELP = "Retries with the same key return the first response and create nothing new."
_WHOLE_BODY = {
    409: ["already_uploaded", "clip_changed"],
    413: ["size_mismatch"],
    422: ["size_mismatch", "checksum_mismatch"],
}


@router.post(
    "",
    summary="Create a clip and start its resumable upload",
    status_code=201,
    response_model=ClipCreated,
    responses=errors(
        401,
        409,
        413,
        422,
        503,
        codes={
            409: ["idempotency_in_progress"],
            413: ["file_too_large"],
            422: [*_TAXONOMY, *_IDEMPOTENCY],
        },
    ),
)
async def create_clip(
    body: ClipCreate,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(description=IDEMPOTENCY_HELP),
    ] = None,
) -> JSONResponse:
    async def produce() -> tuple[int, dict[str, object]]:
        created = await service.create_clip(session, storage, settings, principal, body)
        out = ClipCreated(clip=ClipOut.of(created.clip), upload=UploadSummary.of(created.upload))
        return 201, out.model_dump(mode="json")

    response = await idempotent(
        session, principal, idempotency_key, "POST /v1/clips", body.model_dump(mode="json"), produce
    )
    # Read from the answer, so a replay (the stored first answer) carries it too.
    response.headers["Location"] = f"/v1/clips/{json.loads(bytes(response.body))['clip']['id']}"
    return response


@router.get(
    "",
    summary="List clips the caller may see, newest first",
    response_model=Page[ClipOut],
    responses=errors(401, 422, codes={422: ["invalid_cursor"]}),
)
async def list_clips(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
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
    base = public_base_url(request)
    items = [clip_out(c, settings, base, stats.get(c.id), viewer_id=principal.id) for c in clips]
    return Page[ClipOut](items=items, next_cursor=cursor)


@router.get(
    "/{clip_id}", summary="Get a clip", response_model=ClipOut, responses=errors(401, 404, 422)
)
async def get_clip(
    clip_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ClipOut:
    clip = await service.get_clip(session, principal, clip_id, with_owner=True)
    stats = await stats_for(session, principal, [clip.id])
    upload = await ingest.resumable_upload(session, principal, clip)
    return clip_out(
        clip,
        settings,
        public_base_url(request),
        stats.get(clip.id),
        viewer_id=principal.id,
        upload=upload,
    )


@router.patch(
    "/{clip_id}",
    summary="Edit a clip's title, description, stage, skills or visibility (owner or admin)",
    response_model=ClipOut,
    responses=errors(401, 403, 404, 422, codes={422: _TAXONOMY}),
)
async def update_clip(
    clip_id: uuid.UUID,
    body: ClipUpdate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ClipOut:
    clip = await service.update_clip(session, principal, clip_id, body)
    stats = await stats_for(session, principal, [clip.id])
    return clip_out(
        clip, settings, public_base_url(request), stats.get(clip.id), viewer_id=principal.id
    )


@router.delete(
    "/{clip_id}",
    summary="Delete a clip (gone at once; its media is purged by a background job)",
    status_code=204,
    responses=errors(401, 403, 404, 422),
)
async def delete_clip(clip_id: uuid.UUID, session: SessionDep, principal: PrincipalDep) -> Response:
    await service.delete_clip(session, principal, clip_id)
    return Response(status_code=204)


_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.put(
    "/{clip_id}/source",
    summary="Upload the whole source file as the raw request body (small files, scripts)",
    status_code=202,
    response_model=ClipOut,
    responses=errors(401, 403, 404, 409, 413, 422, 503, codes=_WHOLE_BODY),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"video/*": _BINARY, "application/octet-stream": _BINARY},
        }
    },
)
async def put_source(
    clip_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ClipOut:
    clip = await service.get_clip(session, principal, clip_id, with_owner=True)
    length = request.headers.get("content-length")
    clip = await ingest.put_source(
        session,
        storage,
        principal,
        clip,
        int(length) if length and length.isdigit() else None,
        request.stream(),
    )
    return clip_out(clip, settings, public_base_url(request), viewer_id=principal.id)


@router.post(
    "/{clip_id}/upload",
    summary="Start a new resumable upload of a clip whose upload was aborted or expired",
    status_code=201,
    response_model=UploadSummary,
    responses=errors(
        401,
        403,
        404,
        409,
        413,
        422,
        503,
        codes={
            409: [
                "already_uploaded",
                "upload_in_progress",
                "clip_changed",
                "idempotency_in_progress",
            ],
            413: ["file_too_large"],
            422: _IDEMPOTENCY,
        },
    ),
)
async def restart_upload(
    clip_id: uuid.UUID,
    body: UploadRestart,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(description=IDEMPOTENCY_HELP),
    ] = None,
) -> JSONResponse:
    """The owner only. The clip awaits its source again (`status` `awaiting_upload`, `error`
    cleared); send the parts as for the upload POST /v1/clips started. 409 `already_uploaded`
    once the source has arrived, `upload_in_progress` while the clip's upload is still open
    (resume it, or DELETE it first)."""

    async def produce() -> tuple[int, dict[str, object]]:
        upload = await ingest.restart_upload(session, storage, settings, principal, clip_id, body)
        return 201, UploadSummary.of(upload).model_dump(mode="json")

    scope = f"POST /v1/clips/{clip_id}/upload"
    response = await idempotent(
        session, principal, idempotency_key, scope, body.model_dump(mode="json"), produce
    )
    response.headers["Location"] = f"/v1/uploads/{json.loads(bytes(response.body))['id']}"
    return response
