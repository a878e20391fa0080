"""/v1/uploads: the resumable upload of a clip's source. The routes live with clips because
every one of them is about the clip's ingest (app.clips.ingest); app.uploads is the
transfer protocol underneath and knows nothing of clips."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from app.clips import ingest
from app.clips.present import clip_out
from app.clips.schemas import ClipOut
from app.deps import PrincipalDep, SessionDep, SettingsDep, StorageDep, public_base_url
from app.openapi_meta import errors
from app.uploads.schemas import (
    CompleteRequest,
    PartUrlsOut,
    PartUrlsRequest,
    UploadedPart,
    UploadOut,
)

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

# The 409 codes of an upload that is no longer active (app.uploads.service.ensure_active)
# and the storage's own (app.storage.base: UploadNotFound, InvalidPart).
_ENDED = ["upload_aborted", "upload_expired", "upload_not_active", "invalid_part"]
_NOT_ACTIVE = [*_ENDED, "upload_completed"]


@router.get(
    "/{upload_id}",
    summary="An upload and the parts already stored (how a client resumes)",
    response_model=UploadOut,
    responses=errors(401, 404, 422, 503),
)
async def get_upload(
    upload_id: uuid.UUID, session: SessionDep, storage: StorageDep, principal: PrincipalDep
) -> UploadOut:
    upload, _clip = await ingest.owned_upload(session, principal, upload_id)
    parts = await ingest.stored_parts(session, storage, upload)
    return UploadOut(
        id=upload.id,
        clip_id=upload.clip_id,
        status=upload.status,
        size_bytes=upload.size_bytes,
        part_size=upload.part_size,
        part_count=upload.part_count,
        uploaded_parts=[UploadedPart(number=p.number, size=p.size, etag=p.etag) for p in parts],
        expires_at=upload.expires_at,
    )


@router.post(
    "/{upload_id}/parts",
    summary="Signed URLs to PUT parts to (no Authorization header on those requests)",
    response_model=PartUrlsOut,
    responses=errors(
        401, 404, 409, 422, 503, codes={409: _NOT_ACTIVE, 422: ["invalid_part_number"]}
    ),
)
async def get_part_urls(
    upload_id: uuid.UUID,
    body: PartUrlsRequest,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> PartUrlsOut:
    targets, expires_at = await ingest.part_urls(
        session,
        storage,
        settings,
        principal,
        upload_id,
        body.part_numbers,
        public_base_url(request),
    )
    return PartUrlsOut(parts=targets, expires_at=expires_at)


@router.put(
    "/{upload_id}/parts/{part_number}",
    summary="Receive one part's bytes (local storage; the URL comes from POST …/parts)",
    response_model=UploadedPart,
    responses=errors(
        403,
        404,
        409,
        413,
        422,
        503,
        codes={
            403: ["invalid_signature"],
            409: _NOT_ACTIVE,
            413: ["part_too_large"],
            422: ["invalid_part_number"],
        },
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_part(
    upload_id: uuid.UUID,
    part_number: Annotated[int, Path(ge=1, le=10_000)],
    expires: Annotated[str | None, Query(max_length=20)] = None,
    signature: Annotated[str | None, Query(max_length=128)] = None,
    *,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> JSONResponse:
    length = request.headers.get("content-length")
    part = await ingest.receive_local_part(
        session,
        storage,
        settings,
        upload_id,
        part_number,
        int(expires) if expires and expires.isdigit() else 0,
        signature or "",
        int(length) if length and length.isdigit() else None,
        request.stream(),
    )
    body = UploadedPart(number=part.number, size=part.size, etag=part.etag)
    return JSONResponse(body.model_dump(), headers={"ETag": f'"{part.etag}"'})


@router.post(
    "/{upload_id}/complete",
    summary="Finish the upload; the clip moves to processing and its transcode is queued",
    description="Idempotent: completing an upload already completed answers 202 with the clip "
    "again (a retry whose first answer was lost).",
    status_code=202,
    response_model=ClipOut,
    responses=errors(
        401,
        404,
        409,
        422,
        503,
        codes={
            409: [*_ENDED, "upload_incomplete", "clip_changed"],
            422: ["invalid_parts", "checksum_mismatch"],
        },
    ),
)
async def complete_upload(
    upload_id: uuid.UUID,
    body: CompleteRequest,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ClipOut:
    clip = await ingest.complete_upload(session, storage, principal, upload_id, body.parts)
    return clip_out(clip, settings, public_base_url(request), viewer_id=principal.id)


@router.delete(
    "/{upload_id}",
    summary="Abort the upload and free its stored parts",
    description="The clip then fails with `upload_aborted`; POST /v1/clips/{id}/upload starts "
    "a new upload of it.",
    status_code=204,
    responses=errors(401, 404, 409, 422, 503, codes={409: ["upload_completed"]}),
)
async def abort_upload(
    upload_id: uuid.UUID, session: SessionDep, storage: StorageDep, principal: PrincipalDep
) -> Response:
    await ingest.abort_upload(session, storage, principal, upload_id)
    return Response(status_code=204)
