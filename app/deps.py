"""Request dependencies shared by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.security import InvalidToken, decode_access_token
from app.config import Settings
from app.db import session_scope
from app.errors import Forbidden, Unauthorized
from app.storage.base import Storage
from app.tenancy import Principal
from app.users.models import Role, User


def get_settings_dep(request: Request) -> Settings:
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


async def get_principal(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer access token is required.")
    try:
        claims = decode_access_token(credentials.credentials, settings.secret_key)
    except InvalidToken as exc:
        raise Unauthorized("The access token is invalid or expired.", code="invalid_token") from exc
    # Loading the user each request makes role changes and deactivation effective at once.
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active or user.org_id != claims.org_id:
        raise Unauthorized("The access token is invalid or expired.", code="invalid_token")
    return Principal(user=user)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def _check(principal: PrincipalDep) -> Principal:
        if not principal.has_role(*roles):
            raise Forbidden(f"This requires the role {' or '.join(r.value for r in roles)}.")
        return principal

    return _check


AdminDep = Annotated[Principal, Depends(require_roles(Role.admin))]


def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


StorageDep = Annotated[Storage, Depends(get_storage)]


def public_base_url(request: Request) -> str:
    """Where clients reach this API: configured, or as the request arrived."""
    configured: str | None = request.app.state.settings.public_base_url
    return configured or str(request.base_url)
