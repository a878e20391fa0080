"""Login, refresh-token rotation with reuse detection, and failed-login throttling."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginFailure, RefreshToken
from app.auth.schemas import TokenPair
from app.auth.security import (
    digest_token,
    expires_in,
    issue_access_token,
    new_refresh_token,
    verify_password,
)
from app.config import Settings
from app.db import utcnow
from app.errors import TooManyRequests, Unauthorized
from app.users.models import User


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    message = "Email or password is wrong."
    keep_changes = True  # the failure row must be kept for throttling


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    message = "The refresh token is not valid; log in again."
    keep_changes = True  # a detected reuse revokes the family, and that must stick


async def login(session: AsyncSession, settings: Settings, email: str, password: str) -> TokenPair:
    email = email.strip().lower()
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
    user = await session.scalar(select(User).where(User.email == email))
    valid = await verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        session.add(LoginFailure(email=email))
        raise InvalidCredentials()
    await session.execute(delete(LoginFailure).where(LoginFailure.email == email))
    return _issue_pair(session, settings, user, family_id=uuid.uuid4())


async def refresh(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    now = utcnow()
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest_token(token))
    )
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise InvalidRefreshToken()
    if row.used_at is not None:
        # A rotated token came back: someone holds a copy. Kill every token of the family.
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        raise InvalidRefreshToken()
    # Mark used with a guarded UPDATE so two concurrent refreshes cannot both succeed.
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidRefreshToken()
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise InvalidRefreshToken()
    return _issue_pair(session, settings, user, family_id=row.family_id)


def _issue_pair(
    session: AsyncSession, settings: Settings, user: User, *, family_id: uuid.UUID
) -> TokenPair:
    token, digest = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=digest,
            expires_at=expires_in(settings.refresh_token_ttl_s),
        )
    )
    access = issue_access_token(
        user_id=user.id,
        org_id=user.org_id,
        role=user.role.value,
        secret=settings.secret_key,
        ttl_s=settings.access_token_ttl_s,
    )
    return TokenPair(
        access_token=access, refresh_token=token, expires_in=settings.access_token_ttl_s
    )


async def revoke_user_tokens(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
