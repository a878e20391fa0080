"""Playback URLs (authenticated) and the signed `/v1/play/{token}/...` routes (the token is
the credential, so players, ffmpeg and phones fetch them without an Authorization header)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse

from app.deps import PrincipalDep, SessionDep, SettingsDep, public_base_url
from app.openapi_meta import errors
from app.playback import service
from app.playback.schemas import PlaybackOut

router = APIRouter(tags=["playback"])

M3U8 = "application/vnd.apple.mpegurl"
PLAY_LINK_DOC = "Signed playback token from GET /v1/clips/{id}/playback"
Token = Annotated[str, Path(description=PLAY_LINK_DOC)]


@router.get(
    "/v1/clips/{clip_id}/playback",
    summary="Signed, expiring URLs to play or download a clip",
    response_model=PlaybackOut,
    responses=errors(401, 404, 409, 422),
)
async def get_playback(
    clip_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> PlaybackOut:
    playback = await service.playback_for(
        session, principal, settings, clip_id, public_base_url(request)
    )
    return PlaybackOut(**playback.__dict__)


def _cache(request: Request) -> service.TextCache:
    cache: service.TextCache = request.app.state.playlist_cache
    return cache


async def _signer(request: Request, token: str) -> tuple[service.Grant, service.Signer]:
    # No dependencies on this hot path (FastAPI runs sync ones in the thread pool): the
    # token is the credential, and settings and storage come from the app's state.
    state = request.app.state
    grant = await service.authorize(state.clip_states, state.settings, token)
    return grant, service.Signer(state.storage, state.settings, grant, public_base_url(request))


def _text(body: str, media_type: str, max_age: int) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={
            # The player may reuse it while every URL inside is valid; shared caches may not.
            "Cache-Control": f"private, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
        },
    )


_PLAY_ERRORS = errors(403, 404, codes={403: ["invalid_signature", "expired_signature"]})
_PLAY_ERRORS[403] = {**_PLAY_ERRORS[403], "description": "Invalid, altered or expired token"}
_PLAY_ERRORS[404] = {
    **_PLAY_ERRORS[404],
    "description": "No such file, the clip is gone, or the token's viewer may no longer see it",
}


@router.get(
    "/v1/play/{token}/master.m3u8",
    summary="HLS master playlist (signed path)",
    response_class=Response,
    responses={200: {"content": {M3U8: {}}}, **_PLAY_ERRORS},
)
async def master(token: Token, request: Request) -> Response:
    state = request.app.state
    grant = await service.authorize(state.clip_states, state.settings, token)
    root = service.play_root(public_base_url(request), token)
    body = await service.master_playlist(_cache(request), state.storage, grant, root)
    # The master holds only our own token URLs: cacheable for the token's lifetime once the
    # clip is ready; while it is only viewable, briefly (its bandwidth figures still change).
    return _text(body, M3U8, grant.remaining_s if grant.ready else min(grant.remaining_s, 5))


@router.get(
    "/v1/play/{token}/storyboard.vtt",
    summary="WebVTT thumbnails track with signed sprite URLs (signed path)",
    response_class=Response,
    responses={200: {"content": {"text/vtt": {}}}, **_PLAY_ERRORS},
)
async def storyboard(token: Token, request: Request) -> Response:
    grant, signer = await _signer(request, token)
    body = await service.storyboard_vtt(_cache(request), signer, grant)
    return _text(body, "text/vtt", signer.lifetime_s)


async def _redirect(token: str, request: Request, field: str) -> Response:
    grant, signer = await _signer(request, token)
    url = await service.object_url(signer, grant, field)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@router.get(
    "/v1/play/{token}/download.mp4",
    summary="Redirect to a signed URL of the progressive MP4 (Range works on the target)",
    response_class=Response,
    status_code=302,
    responses=_PLAY_ERRORS,
)
async def download(token: Token, request: Request) -> Response:
    return await _redirect(token, request, "download")


@router.get(
    "/v1/play/{token}/poster.jpg",
    summary="Redirect to a signed URL of the poster JPEG",
    response_class=Response,
    status_code=302,
    responses=_PLAY_ERRORS,
)
async def poster(token: Token, request: Request) -> Response:
    return await _redirect(token, request, "poster")


@router.get(
    "/v1/play/{token}/captions.vtt",
    summary="Redirect to a signed URL of the captions (WebVTT), once the clip has a transcript",
    response_class=Response,
    status_code=302,
    responses=_PLAY_ERRORS,
)
async def captions(token: Token, request: Request) -> Response:
    return await _redirect(token, request, "captions")


@router.get(
    "/v1/play/{token}/{rendition}/{playlist}",
    summary="HLS media playlist of one rendition (or of the captions); its segment URLs are "
    "under the same token",
    response_class=Response,
    responses={200: {"content": {M3U8: {}}}, **_PLAY_ERRORS},
)
async def variant(
    token: Token,
    rendition: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,32}$")],
    playlist: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}\.m3u8$")],
    request: Request,
) -> Response:
    state = request.app.state
    grant = await service.authorize(state.clip_states, state.settings, token)
    chosen = service.find_variant(grant, f"{rendition}/{playlist}")
    root = service.play_root(public_base_url(request), token)
    body = await service.variant_playlist(_cache(request), state.storage, grant, chosen, root)
    # Every URI inside is a token URL (checked and redirected per fetch): cacheable for the
    # token's life once ready; while the clip is encoded its playlists grow: players reload.
    return _text(body, M3U8, grant.remaining_s if grant.ready else min(grant.remaining_s, 1))


# The parameters are read from the path itself, not declared to FastAPI: a plain path segment
# cannot fail validation (a bad name is a 404), so the operation has no 422.
_SEGMENT_PARAMS: dict[str, Any] = {
    "parameters": [
        {"name": "token", "in": "path", "required": True, "description": PLAY_LINK_DOC,
         "schema": {"type": "string"}},
        {"name": "rendition", "in": "path", "required": True,
         "description": "Rendition folder, as in the variant playlist's URL (e.g. v0)",
         "schema": {"type": "string"}},
        {"name": "segment", "in": "path", "required": True,
         "description": "File in that folder (init.mp4, seg_00001.m4s, ...; not *.m3u8)",
         "schema": {"type": "string"}},
    ]
}  # fmt: skip
_SEGMENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    302: {
        "description": "To a URL of the segment minted for this request (presigned S3 GET "
        "or signed /v1/media URL), valid PEERPITCH_PLAYBACK_SEGMENT_URL_TTL_S seconds",
        "headers": {
            "Location": {
                "description": "The segment's short-lived URL",
                "schema": {"type": "string"},
            },
            "Cache-Control": {
                "description": "private, max-age=<half the target's lifetime>",
                "schema": {"type": "string"},
            },
        },
    },
    **_PLAY_ERRORS,
}


@router.get(
    "/v1/play/{token}/s/{rendition}/{segment}",
    summary="Redirect to a short-lived URL of one segment of a rendition (signed path)",
    response_class=Response,
    status_code=302,
    responses=_SEGMENT_RESPONSES,
    openapi_extra=_SEGMENT_PARAMS,
)
async def segment(request: Request) -> Response:
    params = request.path_params
    state = request.app.state
    grant = await service.authorize(state.clip_states, state.settings, params["token"])
    target = await service.segment_redirect(
        state.storage,
        state.settings,
        grant,
        public_base_url(request),
        params["rendition"],
        params["segment"],
    )
    return RedirectResponse(
        target.url,
        status_code=302,
        headers={"Cache-Control": f"private, max-age={target.max_age_s}"},
    )
