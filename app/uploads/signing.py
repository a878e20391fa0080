"""HMAC-signed part URLs for the local storage backend (S3 presigns its own)."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid


def part_signature(secret: str, upload_id: uuid.UUID, part_number: int, expires: int) -> str:
    message = f"upload-part\n{upload_id}\n{part_number}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_part_signature(
    secret: str, upload_id: uuid.UUID, part_number: int, expires: int, signature: str
) -> bool:
    if expires < int(time.time()):
        return False
    expected = part_signature(secret, upload_id, part_number, expires)
    return hmac.compare_digest(expected, signature)
