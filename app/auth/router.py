from __future__ import annotations

from fastapi import APIRouter, Response

from app.auth import service
from app.auth.schemas import LogoutRequest, RefreshRequest, TokenPair, TokenRequest
from app.deps import AuthenticatedDep, ClientAddressDep, SessionDep, SettingsDep
from app.openapi_meta import errors

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post(
    "/token",
    summary="Log in with email and password",
    description=(
        "An email may have an account in several organizations, each with its own password. "
        "Email and password sign in to the one account they open; when they open several, "
        "the answer is `409 organization_required`, listing those organizations "
        "(`details.organizations`: `id`, `name`), and `org_id` picks one. Failed attempts "
        "are throttled per email and client address and per client address "
        "(`429 login_throttled` with `Retry-After`)."
    ),
    response_model=TokenPair,
    responses=errors(
        401,
        409,
        422,
        429,
        codes={
            401: ["invalid_credentials"],
            409: ["organization_required"],
            429: ["login_throttled"],
        },
    ),
)
async def create_token(
    body: TokenRequest, session: SessionDep, settings: SettingsDep, address: ClientAddressDep
) -> TokenPair:
    return await service.login(
        session, settings, body.email, body.password, address=address, org_id=body.org_id
    )


@router.post(
    "/refresh",
    summary="Exchange a refresh token for a new token pair (rotation)",
    description=(
        "Each refresh token works once. Presenting it again within the reuse grace window "
        "(PEERPITCH_REFRESH_REUSE_GRACE_S, default 30 s) answers the same new refresh token "
        "with a fresh access token; later, the reuse ends the whole login."
    ),
    response_model=TokenPair,
    responses=errors(401, 422, codes={401: ["invalid_refresh_token"]}),
)
async def refresh_token(
    body: RefreshRequest, session: SessionDep, settings: SettingsDep
) -> TokenPair:
    return await service.refresh(session, settings, body.refresh_token)


@router.post(
    "/logout",
    summary="Log out: end the caller's login (its refresh tokens stop working)",
    description=(
        "Revokes the refresh-token family the access token was issued from and, when "
        "`refresh_token` is sent, the family of that token. Idempotent: always 204."
    ),
    status_code=204,
    responses=errors(401, 422),
)
async def logout(
    session: SessionDep, authenticated: AuthenticatedDep, body: LogoutRequest | None = None
) -> Response:
    await service.logout(
        session,
        authenticated.principal.id,
        authenticated.session_id,
        body.refresh_token if body is not None else None,
    )
    return Response(status_code=204)
