"""Passwords (argon2), access tokens (HS256 JWT) and opaque refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.db import utcnow

_hasher = PasswordHasher()
# Verified when the email is unknown so both paths cost the same (no user enumeration).
_DUMMY_HASH = _hasher.hash("peerpitch-dummy-password")


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(_verify)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    org_id: uuid.UUID
    role: str
    # The refresh-token family (the login) the token was issued from; None in tokens issued
    # before the ``sid`` claim existed.
    session_id: uuid.UUID | None = None
    # The user's ``token_version`` when the token was issued (0 in tokens from before the
    # ``ver`` claim existed, which is also where every user's version starts).
    version: int = 0


class InvalidToken(Exception):
    """The access token is malformed, forged, expired or of the wrong type."""


class TokenExpired(InvalidToken):
    """The access token was valid but its lifetime is over: refresh it."""


def issue_access_token(
    *,
    user_id: uuid.UUID,
    org_id: uuid.UUID,
    role: str,
    secret: str,
    ttl_s: int,
    session_id: uuid.UUID | None = None,
    version: int = 0,
) -> str:
    now = utcnow()
    claims = {
        "sub": str(user_id),
        "org": str(org_id),
        "role": role,
        "typ": "access",
        "ver": version,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_access_token(token: str, secret: str) -> AccessClaims:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "org"]}
        )
        if claims.get("typ") != "access":
            raise InvalidToken("not an access token")
        sid = claims.get("sid")
        version = claims.get("ver", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise InvalidToken("the token version is not an integer")
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            org_id=uuid.UUID(claims["org"]),
            role=claims["role"],
            session_id=uuid.UUID(sid) if sid is not None else None,
            version=version,
        )
    except jwt.ExpiredSignatureError as exc:  # raised only once the signature checked out
        raise TokenExpired(str(exc)) from exc
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc


def new_refresh_token() -> tuple[str, str]:
    """A fresh opaque token and the digest that is stored."""
    token = secrets.token_urlsafe(32)
    return token, digest_token(token)


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def keyed_digest(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under the server secret, separated by ``purpose``: a
    fingerprint of a secret value (a password) that is useless without the server key."""
    mac = hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256)
    return mac.hexdigest()


def successor_refresh_token(token: str, secret: str) -> str:
    """The refresh token that rotating ``token`` issues: derived from it and the server
    secret, so a repeat of ``token`` within the reuse grace window can name the same
    successor again without storing it. Same length and alphabet as a random token."""
    mac = hmac.new(secret.encode(), f"refresh-successor:{token}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def expires_in(ttl_s: int) -> datetime:
    return utcnow() + timedelta(seconds=ttl_s)
