"""Request dependencies shared by every router."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.caller import read_caller
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
    # The organization's read version before this request read anything (app.readcache).
    read_version: int = 0


async def get_authenticated(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
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
    # Read afresh each request (one statement, outside the ORM: app.auth.caller), so role
    # changes and deactivation take effect at once on every process.
    caller = await read_caller(state.hot_reads, claims.user_id)
    user = caller.user if caller is not None else None
    if user is None or not user.is_active or user.org_id != claims.org_id:
        raise Unauthorized("The access token is invalid.", code="invalid_token")
    # A password change or reset, or a deactivation, moved the version on: tokens issued
    # before are refused (so reactivating a user revives none), except those of a login
    # that was deliberately kept (the one that changed its own password), which still has
    # a working refresh token. Only such stale tokens cost this extra query.
    if claims.version != user.token_version and (
        claims.session_id is None or not await login_alive(session, user.id, claims.session_id)
    ):
        raise Unauthorized(
            "This sign-in has ended (the password was changed or reset, or the account "
            "was deactivated); sign in again.",
            code="token_revoked",
        )
    # In the request's session as if it had loaded it (no statement: the session connects
    # only when a service first uses it), so services may change the caller.
    session.add(user)
    return Authenticated(
        principal=Principal(user=user),
        session_id=claims.session_id,
        read_version=caller.read_version if caller is not None else 0,
    )


AuthenticatedDep = Annotated[Authenticated, Depends(get_authenticated)]


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
