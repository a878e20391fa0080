"""Standard Webhooks signatures (https://www.standardwebhooks.com/, "Signature scheme").

A receiver verifies ``webhook-signature`` with any Standard Webhooks library: the signed content
is ``{webhook-id}.{webhook-timestamp}.{raw body}`` and the key is the secret's base64-decoded
bytes (the ``whsec_`` prefix is not part of the key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _random
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's marker, not a secret
# The spec asks for 24 to 64 bytes of key; 32 is HMAC-SHA256's output size.
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh endpoint secret, ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise ValueError("webhook secret is not valid base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64 HMAC-SHA256>`` per secret, space
    separated, so that during a rotation receivers holding the old or the new secret both
    verify the same delivery."""
    # A bare str is a Sequence[str] too: it would sign with each character as a secret.
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not one str")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    # The body is signed as the exact bytes sent: never re-serialized, never decoded.
    content = f"{msg_id}.{timestamp}.".encode() + body
    signatures = (
        "v1," + base64.b64encode(hmac.new(_key(s), content, hashlib.sha256).digest()).decode()
        for s in secrets
    )
    return " ".join(signatures)


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt. ``timestamp`` is the attempt's time (Unix seconds):
    receivers reject ones outside their tolerance (5 minutes in the reference libraries), so a
    retry is signed anew with its own timestamp while keeping ``msg_id`` for de-duplication."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }
