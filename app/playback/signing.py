"""Playback tokens: a dot-free credential in the URL path, bound to a clip, its media
version, an expiry and (since issue 15) the viewer it was issued to.

``<clip id hex>-<viewer id hex>-<exp unix s>-<base64url(HMAC-SHA256)>``: no dots, so every
playback path still ends in the file's own extension (players pick the segment type from
it). The media version is signed but not carried: checking a token needs the clip's current
version, so a republished or deleted clip invalidates every URL at once. The viewer is
carried so the play routes can re-check that this user may still see the clip
(app.playback.states.ViewerAccess).

The older form without a viewer, ``<clip id hex>-<exp>-<sig>``, still verifies as an
*unbound* token: it stands for no one in particular, so it only reaches what every member of
the clip's organization may see (a shared clip). Nothing should mint it once every caller
passes the viewer; it costs one branch to keep.
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
    viewer_id: uuid.UUID | None = None  # None: an unbound token (see the module's doc)


class MalformedToken(ValueError):
    pass


def _mac(
    secret_key: str, clip_id: uuid.UUID, version: str, exp: int, viewer_id: uuid.UUID | None
) -> str:
    # A distinct label per form: a bound token's MAC never verifies as an unbound one's.
    if viewer_id is None:
        message = f"play\n{clip_id}\n{version}\n{exp}"
    else:
        message = f"play-viewer\n{clip_id}\n{viewer_id}\n{version}\n{exp}"
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_token(
    secret_key: str,
    clip_id: uuid.UUID,
    version: str,
    exp: int,
    viewer_id: uuid.UUID | None = None,
) -> str:
    sig = _mac(secret_key, clip_id, version, exp, viewer_id)
    if viewer_id is None:
        return f"{clip_id.hex}-{exp}-{sig}"
    return f"{clip_id.hex}-{viewer_id.hex}-{exp}-{sig}"


def _uuid(text: str, token: str) -> uuid.UUID:
    if len(text) != 32:
        raise MalformedToken(token)
    try:
        return uuid.UUID(hex=text)
    except ValueError:
        raise MalformedToken(token) from None


def parse_token(token: str) -> PlayToken:
    # The signature is base64url (it may hold "-"): split off the fixed fields only. An
    # expiry has at most 12 digits, so a 32-character second field is always a viewer.
    parts = token.split("-", 2)
    if len(parts) != 3:
        raise MalformedToken(token)
    clip_id = _uuid(parts[0], token)
    viewer_id = None
    if len(parts[1]) == 32:
        viewer_id = _uuid(parts[1], token)
        parts = [parts[0], *parts[2].split("-", 1)]
        if len(parts) != 3:
            raise MalformedToken(token)
    exp = parts[1]
    if not exp.isascii() or not exp.isdigit() or len(exp) > 12:
        raise MalformedToken(token)
    return PlayToken(clip_id=clip_id, exp=int(exp), sig=parts[2], viewer_id=viewer_id)


def verify(secret_key: str, token: PlayToken, version: str) -> bool:
    expected = _mac(secret_key, token.clip_id, version, token.exp, token.viewer_id)
    return hmac.compare_digest(expected.encode(), token.sig.encode("utf-8", "replace"))
