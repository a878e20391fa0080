from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.security import hash_password, keyed_digest
from app.auth.service import end_logins, verify_current_password
from app.config import Settings
from app.errors import Conflict, NotFound, Unprocessable
from app.pagination import PageParams, SortKey, paginate
from app.tenancy import Principal
from app.users.models import Role, User
from app.users.repository import UserRepository
from app.users.schemas import MeUpdate, UserCreate, UserUpdate


async def add_user(
    session: AsyncSession, *, org_id: uuid.UUID, email: str, name: str, role: Role, password: str
) -> User:
    """Create a user in ``org_id``. An email is unique within its organization only: whether
    it has accounts elsewhere is neither asked nor told."""
    email = email.strip().lower()
    if await UserRepository(session, org_id).email_taken(email):
        raise Conflict(
            "A user with this email already exists in this organization.", code="email_taken"
        )
    user = User(
        org_id=org_id,
        email=email,
        name=name.strip(),
        role=role,
        password_hash=await hash_password(password),
    )
    session.add(user)
    await session.flush()
    return user


async def create_user(session: AsyncSession, principal: Principal, data: UserCreate) -> User:
    return await add_user(
        session,
        org_id=principal.org_id,
        email=str(data.email),
        name=data.name,
        role=data.role,
        password=data.password,
    )


def create_user_fingerprint(data: UserCreate, secret: str) -> dict[str, Any]:
    """What an Idempotency-Key record of POST /v1/users is compared by: the request, with
    the password replaced by a keyed digest (so the stored hash reveals nothing of it)."""
    return {
        **data.model_dump(mode="json", exclude={"password"}),
        "password": keyed_digest(secret, "idempotency-password", data.password),
    }


async def list_users(
    session: AsyncSession, principal: Principal, params: PageParams
) -> tuple[list[User], str | None]:
    users = UserRepository.of(session, principal)
    return await paginate(session, users.select(), [SortKey(User.id)], params)


async def get_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    return await UserRepository.of(session, principal).get(user_id)


async def update_user(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, data: UserUpdate
) -> User:
    users = UserRepository.of(session, principal)
    user = await users.get(user_id)
    losing_admin = user.role == Role.admin and (
        (data.role is not None and data.role != Role.admin) or data.is_active is False
    )
    if losing_admin and await users.active_admin_count() <= 1:
        raise Conflict("An organization must keep at least one admin.", code="last_admin")
    if data.name is not None:
        user.name = data.name.strip()
    if data.role is not None:
        user.role = data.role
    if data.is_active is not None:
        user.is_active = data.is_active
    if data.password is not None:
        user.password_hash = await hash_password(data.password)
    if data.password is not None or data.is_active is False:
        # Every login ends, access tokens included; reactivating later revives none.
        await end_logins(session, user)
    await session.flush()
    return user


async def update_me(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    session_id: uuid.UUID | None,
    data: MeUpdate,
    *,
    address: str | None,
) -> User:
    """The caller changes their name and/or password. A new password needs the current one
    (checked first, so a wrong one changes nothing; failures from ``address`` are throttled
    like failed sign-ins) and ends every other login of the user, their access tokens
    included; the caller's own (``session_id``, the access token's refresh family) stays
    signed in."""
    # Read in this transaction: principal.user is detached and may be up to
    # PEERPITCH_AUTH_RECHECK_S old (app.auth.caller), and a new password moves the token
    # version on from its current value.
    user = await session.get(User, principal.id)
    if user is None:
        raise NotFound("No such user.")
    if data.password is not None:
        if data.current_password is None:
            raise Unprocessable(
                "Send current_password to change the password.", code="current_password_required"
            )
        await verify_current_password(session, settings, user, data.current_password, address)
    if data.name is not None:
        user.name = data.name.strip()
    if data.password is not None:
        user.password_hash = await hash_password(data.password)
        await end_logins(session, user, except_family=session_id)
    await session.flush()
    return user


async def list_people(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    *,
    q: str | None = None,
    role: Role | None = None,
) -> tuple[list[User], str | None]:
    """Active members of the caller's organization, by name."""
    stmt = UserRepository.of(session, principal).people(q=(q or "").strip() or None, role=role)
    return await paginate(session, stmt, [SortKey(User.name), SortKey(User.id)], params)
