from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from app.clips.service import get_clip
from app.config import Settings
from app.deps import FreshAuthenticatedDep, PrincipalDep, SessionDep, SettingsDep, public_base_url
from app.exemplars import service
from app.exemplars.models import Exemplar
from app.exemplars.prep import PrepContent, read_prep, signed_again
from app.exemplars.present import exemplar_view
from app.exemplars.schemas import (
    ExemplarLinkCreate,
    ExemplarLinkOut,
    ExemplarMark,
    ExemplarOut,
    PrepKit,
)
from app.idempotency.service import idempotent
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params
from app.playback.service import poster_url
from app.readcache.cache import ReadCache

router = APIRouter(tags=["exemplars"])

SkillQuery = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

_LINK_LOCATION: dict[str, Any] = {
    "Location": {
        "description": "The URL path of the link: /v1/clips/{clip_id}/exemplars/{exemplar_id}.",
        "schema": {"type": "string"},
    }
}


def exemplar_out(
    exemplar: Exemplar,
    settings: Settings,
    base_url: str,
    *,
    viewer_id: uuid.UUID,
    now: float | None = None,
) -> ExemplarOut:
    """An exemplar as lists show it: its poster is the short-lived list URL bound to the
    caller, signed in memory (``now``: one signing time for a whole page)."""
    clip = exemplar.clip
    poster = poster_url(settings, clip.id, clip.media, base_url, viewer_id=viewer_id, now=now)
    return exemplar_view(exemplar, poster)


def link_out(
    link: service.Link,
    settings: Settings,
    base_url: str,
    *,
    viewer_id: uuid.UUID,
    now: float | None = None,
) -> ExemplarLinkOut:
    return ExemplarLinkOut(
        exemplar=exemplar_out(link.exemplar, settings, base_url, viewer_id=viewer_id, now=now),
        source="manual" if link.source == "manual" else "auto",
        reason=link.reason,
        score=link.score,
    )


@router.post(
    "/v1/clips/{clip_id}/exemplar",
    summary="Mark a ready clip as an exemplar of its stage (coach, admin; top performer: own)",
    response_model=ExemplarOut,
    responses=errors(401, 403, 404, 409, 422, codes={409: ["not_ready"]}),
)
async def mark_exemplar(
    clip_id: uuid.UUID,
    body: ExemplarMark,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ExemplarOut:
    exemplar = await service.mark(session, principal, clip_id, body.note)
    return exemplar_out(exemplar, settings, public_base_url(request), viewer_id=principal.id)


@router.delete(
    "/v1/clips/{clip_id}/exemplar",
    summary="Unmark an exemplar (idempotent)",
    status_code=204,
    responses=errors(401, 403, 404, 422),
)
async def unmark_exemplar(
    clip_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> Response:
    await service.unmark(session, principal, clip_id)
    return Response(status_code=204)


@router.get(
    "/v1/exemplars",
    summary="The exemplar library, best first (score: see the README)",
    response_model=Page[ExemplarOut],
    responses=errors(401, 422),
)
async def list_exemplars(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
    stage: Annotated[str | None, Query(max_length=64)] = None,
    skill: SkillQuery = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Page[ExemplarOut]:
    filters = service.LibraryFilters(stage=stage, skill=skill, q=q)
    items, cursor = await service.library(session, principal, filters, page)
    base, now = public_base_url(request), time.time()
    return Page[ExemplarOut](
        items=[exemplar_out(e, settings, base, viewer_id=principal.id, now=now) for e in items],
        next_cursor=cursor,
    )


@router.get(
    "/v1/clips/{clip_id}/exemplars",
    summary="The exemplars a clip links to: manual choices first, then the best automatic ones",
    response_model=list[ExemplarLinkOut],
    responses=errors(401, 404, 422),
)
async def clip_exemplars(
    clip_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> list[ExemplarLinkOut]:
    clip = await get_clip(session, principal, clip_id)
    links = await service.links_for_clip(session, principal, clip, settings.exemplar_links)
    base, now = public_base_url(request), time.time()
    return [link_out(link, settings, base, viewer_id=principal.id, now=now) for link in links]


@router.post(
    "/v1/clips/{clip_id}/exemplars",
    summary="Link a clip to an exemplar by hand (owner, coach, admin); 200 if already linked",
    description="`201` for a new link, `200` when it already existed; both with `Location: "
    "/v1/clips/{clip_id}/exemplars/{exemplar_id}` (the link, which `DELETE` removes). With an "
    "`Idempotency-Key`, a retry returns the first response (`Idempotent-Replayed: true`).",
    status_code=201,
    response_model=ExemplarLinkOut,
    responses={
        201: {"description": "Linked", "headers": _LINK_LOCATION},
        200: {"description": "Already linked", "model": ExemplarLinkOut, "headers": _LINK_LOCATION},
        **errors(401, 403, 404, 409, 422, codes={422: ["self_link", "not_an_exemplar"]}),
    },
)
async def add_link(
    clip_id: uuid.UUID,
    body: ExemplarLinkCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(description="Retries with the same key return the first response."),
    ] = None,
) -> JSONResponse:
    async def produce() -> tuple[int, dict[str, object]]:
        link, created = await service.add_manual_link(session, principal, clip_id, body.exemplar_id)
        out = link_out(link, settings, public_base_url(request), viewer_id=principal.id)
        return 201 if created else 200, out.model_dump(mode="json")

    scope = f"POST /v1/clips/{clip_id}/exemplars"
    response = await idempotent(
        session, principal, idempotency_key, scope, body.model_dump(mode="json"), produce
    )
    response.headers["Location"] = f"/v1/clips/{clip_id}/exemplars/{body.exemplar_id}"
    return response


@router.delete(
    "/v1/clips/{clip_id}/exemplars/{exemplar_id}",
    summary="Remove a manual exemplar link",
    status_code=204,
    responses=errors(401, 403, 404, 422),
)
async def remove_link(
    clip_id: uuid.UUID, exemplar_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> Response:
    await service.remove_manual_link(session, principal, clip_id, exemplar_id)
    return Response(status_code=204)


@router.get(
    "/v1/prep",
    summary="The pre-meeting kit for a phone: exemplars to download, tips, my open feedback",
    response_model=PrepKit,
    responses={
        **errors(401, 422, codes={422: ["unknown_stage"]}),
        304: {"description": "Not modified (If-None-Match)"},
    },
)
async def get_prep(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    authenticated: FreshAuthenticatedDep,
    stage: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10)] = 3,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    principal = authenticated.principal
    version = authenticated.read_version or 0
    base_url = public_base_url(request)
    # Kept per caller and served again only while the org's read version is unchanged
    # (app.readcache); its URLs are signed afresh for each answer.
    kits: ReadCache[PrepContent] = request.app.state.prep_kits
    key = (principal.id, principal.role, base_url, stage, limit)
    content = kits.get(key, version)
    fresh = content is None
    if content is None:
        content = await read_prep(session, principal, settings, base_url, stage, limit)
        kits.put(key, version, content)
    headers = {"ETag": content.etag, "Cache-Control": "private, no-cache"}
    if if_none_match and content.etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    kit = content.kit if fresh else signed_again(content, settings, base_url, principal)
    return Response(kit.model_dump_json(), media_type="application/json", headers=headers)
