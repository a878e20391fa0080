"""Playback tokens: a dot-free credential in the URL path, bound to a clip, its media
version and an expiry.

``<clip id hex>-<exp unix s>-<base64url(HMAC-SHA256)>``: no dots, so every playback path
still ends in the file's own extension (players pick the segment type from it). The media
version is signed but not carried: checking a token needs the clip's current version, so a
republished or deleted clip invalidates every URL at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PlayToken:
    clip_id: uuid.UUID
    exp: int
    sig: str


class MalformedToken(ValueError):
    pass


def _mac(secret_key: str, clip_id: uuid.UUID, version: str, exp: int) -> str:
    message = f"play\n{clip_id}\n{version}\n{exp}".encode()
    digest = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(secret_key: str, clip_id: uuid.UUID, version: str, exp: int) -> str:
    return f"{clip_id.hex}-{exp}-{_mac(secret_key, clip_id, version, exp)}"


def parse_token(token: str) -> PlayToken:
    parts = token.split("-", 2)
    if len(parts) != 3 or len(parts[0]) != 32 or not parts[1].isdigit() or len(parts[1]) > 12:
        raise MalformedToken(token)
    try:
        clip_id = uuid.UUID(hex=parts[0])
    except ValueError:
        raise MalformedToken(token) from None
    return PlayToken(clip_id=clip_id, exp=int(parts[1]), sig=parts[2])


def verify(secret_key: str, token: PlayToken, version: str) -> bool:
    expected = _mac(secret_key, token.clip_id, version, token.exp)
    return hmac.compare_digest(expected.encode(), token.sig.encode("utf-8", "replace"))
