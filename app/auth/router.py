from __future__ import annotations

from fastapi import APIRouter

from app.auth import service
from app.auth.schemas import RefreshRequest, TokenPair, TokenRequest
from app.deps import SessionDep, SettingsDep
from app.openapi_meta import errors

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post(
    "/token",
    summary="Log in with email and password",
    response_model=TokenPair,
    responses=errors(401, 422, 429),
)
async def create_token(body: TokenRequest, session: SessionDep, settings: SettingsDep) -> TokenPair:
    return await service.login(session, settings, body.email, body.password)


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new token pair (rotation)",
    response_model=TokenPair,
    responses=errors(401, 422),
)
async def refresh_token(
    body: RefreshRequest, session: SessionDep, settings: SettingsDep
) -> TokenPair:
    return await service.refresh(session, settings, body.refresh_token)
