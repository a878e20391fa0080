"""Throttling of failed password checks (sign-in, and the current password of PATCH /v1/me).

Failures count within ``login_failure_window_s``, two ways:

- per (email, client address) pair, up to ``login_max_failures``: one client guessing one
  account's password is slowed, while the owner, from any other address, still signs in
  with their correct password (strangers' failures never lock them out);
- per client address, up to ``login_address_max_failures`` across every email: one client
  guessing many accounts (or trying one password on many) is slowed.

Past either limit the attempt is refused before any password is checked (so it counts for
nothing) with ``429 login_throttled`` and ``Retry-After``: the seconds until enough counted
failures leave the window. The client address is the connection's peer as the ASGI server
reports it; behind a reverse proxy, the server must be told which proxies to believe
(uvicorn: ``FORWARDED_ALLOW_IPS``), or every client shares the proxy's address.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginFailure
from app.config import Settings
from app.db import utcnow
from app.errors import TooManyRequests

ADDRESS_MAX_LENGTH = 64


def address_key(host: str | None) -> str:
    """What failures from ``host`` are counted under: an IPv4 address as is (also when
    IPv4-mapped); an IPv6 address by its /64, the block one subscriber gets, so that
    walking through it does not buy new budgets; anything else as given."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:ADDRESS_MAX_LENGTH]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip), 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Attempt:
    """A password check: the (normalised) email it is for and where it comes from."""

    email: str
    address: str

    @classmethod
    def of(cls, email: str, host: str | None) -> Attempt:
        return cls(email=normalize_email(email), address=address_key(host))

    def pair(self) -> ColumnElement[bool]:
        return and_(LoginFailure.email == self.email, LoginFailure.address == self.address)

    def from_address(self) -> ColumnElement[bool]:
        return LoginFailure.address == self.address


def normalize_email(email: str) -> str:
    return email.strip().lower()


class LoginThrottled(TooManyRequests):
    code = "login_throttled"


async def check(session: AsyncSession, settings: Settings, attempt: Attempt) -> None:
    """Refuse ``attempt`` while its pair or its address is past its limit."""
    waits = [
        await _retry_after(session, settings, attempt.pair(), settings.login_max_failures),
        await _retry_after(
            session, settings, attempt.from_address(), settings.login_address_max_failures
        ),
    ]
    wait = max((w for w in waits if w is not None), default=None)
    if wait is not None:
        raise LoginThrottled(
            f"Too many failed password checks; try again in {wait} s.",
            headers={"Retry-After": str(wait)},
        )


async def _retry_after(
    session: AsyncSession, settings: Settings, condition: ColumnElement[bool], limit: int
) -> int | None:
    """Seconds until fewer than ``limit`` failures matching ``condition`` are in the
    window; None when fewer already are."""
    now = utcnow()
    window = timedelta(seconds=settings.login_failure_window_s)
    # The limit-th most recent failure: when it leaves the window, limit - 1 remain.
    at = await session.scalar(
        select(LoginFailure.created_at)
        .where(condition, LoginFailure.created_at >= now - window)
        .order_by(LoginFailure.created_at.desc())
        .offset(limit - 1)
        .limit(1)
    )
    if at is None:
        return None
    return max(1, math.ceil((at + window - now).total_seconds()))


def record_failure(session: AsyncSession, attempt: Attempt) -> None:
    """Count a failed check (the caller's error must keep the session's changes)."""
    session.add(LoginFailure(email=attempt.email, address=attempt.address))


async def clear(session: AsyncSession, attempt: Attempt) -> None:
    """A successful sign-in forgets its pair's failures (typos), not its address's: one
    account's success must not refill a budget spent guessing others."""
    await session.execute(delete(LoginFailure).where(attempt.pair()))


async def purge_expired(session: AsyncSession, settings: Settings) -> int:
    """Drop failures older than the window: they count for nothing any more."""
    cutoff = utcnow() - timedelta(seconds=settings.login_failure_window_s)
    result = await session.execute(delete(LoginFailure).where(LoginFailure.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
