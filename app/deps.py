"""Request dependencies shared by every router."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.caller import CallerCache
from app.auth.security import InvalidToken, TokenExpired, decode_access_token
from app.auth.service import login_alive
from app.config import Settings
from app.db import session_scope
from app.errors import Forbidden, Unauthorized
from app.storage.base import Storage
from app.tenancy import Principal
from app.users.models import Role


# Dependencies are coroutines: FastAPI runs a plain ``def`` one in a worker thread, a hop
# that costs more than the work of most of them.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessionmaker) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": the transaction commits when the endpoint returns, before the response
# is sent, so a client never sees success for a write that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /v1/auth/token")


@dataclass(frozen=True)
class Authenticated:
    """The caller and the login (refresh-token family) their access token came from."""

    principal: Principal
    # None for access tokens issued before they carried the ``sid`` claim.
    session_id: uuid.UUID | None
    # The organization's read version before this request read anything (app.readcache);
    # only with FreshAuthenticatedDep.
    read_version: int | None = None


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, fresh: bool
) -> Authenticated:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer access token is required.")
    state = request.app.state
    try:
        claims = decode_access_token(credentials.credentials, state.settings.secret_key)
    except TokenExpired as exc:
        raise Unauthorized(
            "The access token has expired; get a new one with POST /v1/auth/refresh.",
            code="token_expired",
        ) from exc
    except InvalidToken as exc:
        raise Unauthorized("The access token is invalid.", code="invalid_token") from exc
    # The caller's row: read now, or as read by this process at most PEERPITCH_AUTH_RECHECK_S
    # (≤ 1 s) ago (app.auth.caller), so role changes and deactivation apply within that
    # bound on every process, and at once on the one that made them.
    callers: CallerCache = state.callers
    caller = await callers.get(claims.user_id, fresh=fresh)
    user = caller.user if caller is not None else None
    if user is None or not user.is_active or user.org_id != claims.org_id:
        raise Unauthorized("The access token is invalid.", code="invalid_token")
    # A password change or reset, or a deactivation, moved the version on: tokens issued
    # before are refused (so reactivating a user revives none), except those of a login
    # that was deliberately kept (the one that changed its own password), which still has
    # a working refresh token. Only such stale tokens cost this extra query.
    if claims.version != user.token_version and (
        claims.session_id is None or not await _login_alive(state, user.id, claims.session_id)
    ):
        raise Unauthorized(
            "This sign-in has ended (the password was changed or reset, or the account "
            "was deactivated); sign in again.",
            code="token_revoked",
        )
    # The user is in no session: a request that needs no database session opens none; a
    # service that changes the caller adds it to its session first.
    return Authenticated(
        principal=Principal(user=user),
        session_id=claims.session_id,
        read_version=caller.read_version if caller is not None else None,
    )


_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_authenticated(request: Request, credentials: _Credentials) -> Authenticated:
    return await _authenticate(request, credentials, fresh=False)


async def get_fresh_authenticated(request: Request, credentials: _Credentials) -> Authenticated:
    """The caller read by this request, with the organization's read version: for the
    answers kept by app.readcache, which must know the version before they read."""
    return await _authenticate(request, credentials, fresh=True)


async def _login_alive(state: Any, user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    async with session_scope(state.sessionmaker) as session:
        return await login_alive(session, user_id, session_id)


AuthenticatedDep = Annotated[Authenticated, Depends(get_authenticated)]
FreshAuthenticatedDep = Annotated[Authenticated, Depends(get_fresh_authenticated)]


async def get_principal(authenticated: AuthenticatedDep) -> Principal:
    return authenticated.principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def _check(principal: PrincipalDep) -> Principal:
        if not principal.has_role(*roles):
            raise Forbidden(f"This requires the role {' or '.join(r.value for r in roles)}.")
        return principal

    return _check


AdminDep = Annotated[Principal, Depends(require_roles(Role.admin))]


async def client_address(request: Request) -> str | None:
    """The caller's network address: the connection's peer, or the client a trusted proxy
    names (uvicorn applies X-Forwarded-For only from the addresses in its
    ``FORWARDED_ALLOW_IPS``, default loopback; see `peerpitch serve`)."""
    return request.client.host if request.client is not None else None


ClientAddressDep = Annotated[str | None, Depends(client_address)]


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


StorageDep = Annotated[Storage, Depends(get_storage)]


def public_base_url(request: Request) -> str:
    """Where clients reach this API: configured, or as the request arrived."""
    configured: str | None = request.app.state.settings.public_base_url
    return configured or str(request.base_url)
