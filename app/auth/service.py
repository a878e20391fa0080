"""Login, refresh-token rotation with reuse detection (and its grace window), logout, and
failed-login throttling."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginFailure, RefreshToken
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
from app.errors import Forbidden, TooManyRequests, Unauthorized
from app.users.models import User


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Email or password is wrong."
    keep_changes = True  # the failure row must be kept for throttling


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "The refresh token is not valid; log in again."
    keep_changes = True  # a detected reuse revokes the family, and that must stick


class WrongCurrentPassword(Forbidden):
    code = "current_password_invalid"
    message = "The current password is wrong."
    keep_changes = True  # the failure row must be kept for throttling


async def _check_throttle(session: AsyncSession, settings: Settings, email: str) -> None:
    window_start = utcnow() - timedelta(seconds=settings.login_failure_window_s)
    recent_failures = await session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.email == email, LoginFailure.created_at >= window_start)
    )
    if (recent_failures or 0) >= settings.login_max_failures:
        raise TooManyRequests(
            "Too many failed logins for this email; try again in a minute.",
            code="login_throttled",
            headers={"Retry-After": str(settings.login_failure_window_s)},
        )


async def login(session: AsyncSession, settings: Settings, email: str, password: str) -> TokenPair:
    email = email.strip().lower()
    await _check_throttle(session, settings, email)
    user = await session.scalar(select(User).where(User.email == email))
    valid = await verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        session.add(LoginFailure(email=email))
        raise InvalidCredentials()
    await session.execute(delete(LoginFailure).where(LoginFailure.email == email))
    return _issue_pair(session, settings, user, family_id=uuid.uuid4())


async def verify_current_password(
    session: AsyncSession, settings: Settings, user: User, password: str
) -> None:
    """A signed-in user proves they know their password (before changing it). Failures
    count towards, and are refused by, the same throttle as failed logins."""
    await _check_throttle(session, settings, user.email)
    if not await verify_password(user.password_hash, password):
        session.add(LoginFailure(email=user.email))
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


async def revoke_user_tokens(
    session: AsyncSession, user_id: uuid.UUID, *, except_family: uuid.UUID | None = None
) -> None:
    """Revoke every refresh token of the user, but those of ``except_family`` if given."""
    stmt = update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
    )
    if except_family is not None:
        stmt = stmt.where(RefreshToken.family_id != except_family)
    await session.execute(stmt.values(revoked_at=utcnow()))
