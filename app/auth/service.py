"""Sign-in (accounts of one email across organizations), refresh-token rotation with reuse
detection (and its grace window), logout, and the end of every login of a user. Failed
password checks are throttled by ``app.auth.throttle``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import anyio
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import throttle
from app.auth.models import RefreshToken
from app.auth.schemas import TokenPair
from app.auth.security import (
    digest_token,
    expires_in,
    issue_access_token,
    new_refresh_token,
    successor_refresh_token,
    verify_password,
)
from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, Forbidden, Unauthorized
from app.orgs.models import Organization
from app.tenancy import in_org
from app.users.models import User

# Most accounts of one email a sign-in without ``org_id`` checks the password against (one
# argon2 verification each, run concurrently). An email with more accounts than this signs
# in to the others by naming their organization.
MAX_SIGN_IN_ACCOUNTS = 5


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Email or password is wrong."
    keep_changes = True  # the failure row must be kept for throttling


class OrganizationRequired(Conflict):
    code = "organization_required"
    message = (
        "This email and password open accounts in several organizations: send `org_id` "
        "with one of the organizations listed in `details.organizations`."
    )


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "The refresh token is not valid; log in again."
    keep_changes = True  # a detected reuse revokes the family, and that must stick


class WrongCurrentPassword(Forbidden):
    code = "current_password_invalid"
    message = "The current password is wrong."
    keep_changes = True  # the failure row must be kept for throttling


async def login(
    session: AsyncSession,
    settings: Settings,
    email: str,
    password: str,
    *,
    address: str | None,
    org_id: uuid.UUID | None = None,
) -> TokenPair:
    """Sign in to the active account of ``email`` (in ``org_id`` when given) whose password
    is ``password``.

    Without ``org_id`` the password is checked against each active account of the email
    (at most ``MAX_SIGN_IN_ACCOUNTS``): exactly one match signs in to it; several answer
    ``409 organization_required`` naming only the organizations whose account the password
    opened, so nothing is said about an email to anyone who does not hold its password.
    No match, no account, or an inactive one are all the same ``401``, at the cost of a
    password check (a dummy hash when there is no account).
    """
    attempt = throttle.Attempt.of(email, address)
    await throttle.check(session, settings, attempt)
    stmt = select(User).where(User.email == attempt.email, User.is_active.is_(True))
    if org_id is not None:
        stmt = stmt.where(in_org(org_id, User))
    candidates = (await session.scalars(stmt.order_by(User.id).limit(MAX_SIGN_IN_ACCOUNTS))).all()
    matches = await _opened_by(candidates, password)
    if not matches:
        throttle.record_failure(session, attempt)
        raise InvalidCredentials()
    if len(matches) > 1:
        raise OrganizationRequired(
            details={"organizations": await _organizations(session, matches)}
        )
    await throttle.clear(session, attempt)
    return _issue_pair(session, settings, matches[0], family_id=uuid.uuid4())


async def _opened_by(candidates: Sequence[User], password: str) -> list[User]:
    """The accounts among ``candidates`` whose password is ``password``: their hashes are
    verified concurrently, so the time barely depends on how many there are; none costs
    one dummy verification, like one account."""
    if not candidates:
        await verify_password(None, password)
        return []
    opened = [False] * len(candidates)

    async def verify(index: int, user: User) -> None:
        opened[index] = await verify_password(user.password_hash, password)

    async with anyio.create_task_group() as group:
        for index, user in enumerate(candidates):
            group.start_soon(verify, index, user)
    return [user for user, ok in zip(candidates, opened, strict=True) if ok]


async def _organizations(session: AsyncSession, users: Sequence[User]) -> list[dict[str, str]]:
    rows = await session.execute(
        select(Organization.id, Organization.name)
        .where(Organization.id.in_([user.org_id for user in users]))
        .order_by(Organization.name, Organization.id)
    )
    return [{"id": str(org_id), "name": name} for org_id, name in rows.all()]


async def verify_current_password(
    session: AsyncSession, settings: Settings, user: User, password: str, address: str | None
) -> None:
    """A signed-in user proves they know their password (before changing it). Failures
    count towards, and are refused by, the same throttle as failed sign-ins from
    ``address`` with the user's email."""
    attempt = throttle.Attempt.of(user.email, address)
    await throttle.check(session, settings, attempt)
    if not await verify_password(user.password_hash, password):
        throttle.record_failure(session, attempt)
        raise WrongCurrentPassword()


async def refresh(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    """Rotate ``token``: mark it used and issue its successor.

    A token that comes back after it was used means someone holds a copy, and its whole
    family is revoked; except within ``refresh_reuse_grace_s`` of its use (two tabs, a lost
    response) while the successor is still unused, when the answer is that same successor
    again with a fresh access token. The successor is derived from the token and the server
    secret, so it can be named again without storing it; successors issued before that
    (random) are never repeated.
    """
    now = utcnow()
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest_token(token))
    )
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise InvalidRefreshToken()
    if row.used_at is None:
        # Mark used with a guarded UPDATE so two concurrent refreshes cannot both rotate.
        claimed = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            user = await _active_user(session, row.user_id)
            successor = successor_refresh_token(token, settings.secret_key)
            return _issue_pair(
                session, settings, user, family_id=row.family_id, refresh_token=successor
            )
        # A concurrent refresh of the same token rotated it first, and has committed (the
        # UPDATE waited for its row lock). Within the grace window, answer that same pair;
        # after it, refuse as before, without treating the race as a leak.
        used_at = await session.scalar(
            select(RefreshToken.used_at).where(RefreshToken.id == row.id)
        )
        repeated = await _repeat_within_grace(session, settings, row, token, used_at)
        if repeated is None:
            raise InvalidRefreshToken()
        return repeated
    repeated = await _repeat_within_grace(session, settings, row, token, row.used_at)
    if repeated is not None:
        return repeated
    # A rotated token came back: someone holds a copy. Kill every token of the family.
    await revoke_families(session, row.user_id, [row.family_id])
    raise InvalidRefreshToken()


async def _repeat_within_grace(
    session: AsyncSession,
    settings: Settings,
    row: RefreshToken,
    token: str,
    used_at: datetime | None,
) -> TokenPair | None:
    """The pair that rotating ``row`` issued, when ``token`` was used within the grace
    window and that successor is alive and unused (the client presenting ``token`` cannot
    have seen it yet); else None."""
    grace = settings.refresh_reuse_grace_s
    now = utcnow()
    if grace <= 0 or used_at is None or now - used_at > timedelta(seconds=grace):
        return None
    successor = successor_refresh_token(token, settings.secret_key)
    issued = await session.scalar(
        select(RefreshToken).where(
            RefreshToken.token_hash == digest_token(successor),
            RefreshToken.family_id == row.family_id,
            RefreshToken.user_id == row.user_id,
        )
    )
    if (
        issued is None  # a random successor, issued before successors were derived
        or issued.used_at is not None  # the chain moved on: this holder is behind, a copy
        or issued.revoked_at is not None  # the login ended
        or issued.expires_at <= now
    ):
        return None
    user = await _active_user(session, row.user_id)
    remaining = int((issued.expires_at - now).total_seconds())
    return _pair(settings, user, row.family_id, successor, max(remaining, 0))


async def _active_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise InvalidRefreshToken()
    return user


def _issue_pair(
    session: AsyncSession,
    settings: Settings,
    user: User,
    *,
    family_id: uuid.UUID,
    refresh_token: str | None = None,
) -> TokenPair:
    """Store a new refresh token of ``family_id`` (``refresh_token``, or a random one) and
    answer it with a new access token."""
    if refresh_token is None:
        refresh_token, digest = new_refresh_token()
    else:
        digest = digest_token(refresh_token)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=digest,
            expires_at=expires_in(settings.refresh_token_ttl_s),
        )
    )
    return _pair(settings, user, family_id, refresh_token, settings.refresh_token_ttl_s)


def _pair(
    settings: Settings,
    user: User,
    family_id: uuid.UUID,
    refresh_token: str,
    refresh_expires_in: int,
) -> TokenPair:
    access = issue_access_token(
        user_id=user.id,
        org_id=user.org_id,
        role=user.role.value,
        secret=settings.secret_key,
        ttl_s=settings.access_token_ttl_s,
        session_id=family_id,
        version=user.token_version,
    )
    return TokenPair(
        access_token=access,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_s,
        refresh_expires_in=refresh_expires_in,
    )


async def logout(
    session: AsyncSession,
    user_id: uuid.UUID,
    session_id: uuid.UUID | None,
    refresh_token: str | None,
) -> None:
    """End the caller's login: the family named by the access token's ``sid`` and the one
    ``refresh_token`` belongs to (when it is the caller's). Ending an ended login is fine."""
    families: list[uuid.UUID] = [session_id] if session_id is not None else []
    if refresh_token is not None:
        family = await session.scalar(
            select(RefreshToken.family_id).where(
                RefreshToken.token_hash == digest_token(refresh_token),
                RefreshToken.user_id == user_id,
            )
        )
        if family is not None:
            families.append(family)
    await revoke_families(session, user_id, families)


async def revoke_families(
    session: AsyncSession, user_id: uuid.UUID, family_ids: list[uuid.UUID]
) -> None:
    if not family_ids:
        return
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.user_id == user_id,
            RefreshToken.family_id.in_(family_ids),
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


async def end_logins(
    session: AsyncSession, user: User, *, except_family: uuid.UUID | None = None
) -> None:
    """End every login of ``user`` (a password change or reset, a deactivation): its
    refresh tokens are revoked, but those of ``except_family`` if given, and its
    ``token_version`` moves on, so access tokens issued before are refused too (those of
    ``except_family``, whose login goes on, are let through: see ``login_alive``)."""
    user.token_version += 1
    stmt = update(RefreshToken).where(
        RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None)
    )
    if except_family is not None:
        stmt = stmt.where(RefreshToken.family_id != except_family)
    await session.execute(stmt.values(revoked_at=utcnow()))


async def login_alive(session: AsyncSession, user_id: uuid.UUID, family_id: uuid.UUID) -> bool:
    """The login ``family_id`` of the user still has a refresh token that works."""
    found = await session.scalar(
        select(RefreshToken.id)
        .where(
            RefreshToken.user_id == user_id,
            RefreshToken.family_id == family_id,
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > utcnow(),
        )
        .limit(1)
    )
    return found is not None
