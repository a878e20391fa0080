"""Idempotency keys: a retried POST returns the first response and creates nothing new.

Usage from a router: ``await idempotent(session, principal, key, scope, body, produce)``
where ``produce`` performs the change and returns ``(status_code, json_body)``. The record is
written in the same transaction as the change, so both commit or neither does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import Conflict, Unprocessable
from app.idempotency.models import IdempotencyRecord
from app.tenancy import Principal

# Longer than an upload may stay open (48 h): an app that retries a create after resuming a
# two-day-old upload session still gets the first answer, never a duplicate.
RETENTION = timedelta(hours=72)
MAX_KEY_LENGTH = 255


def request_fingerprint(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def idempotent(
    session: AsyncSession,
    principal: Principal,
    key: str | None,
    scope: str,
    payload: Any,
    produce: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
) -> JSONResponse:
    if key is None:
        status, body = await produce()
        return JSONResponse(body, status_code=status)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Unprocessable(
            f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} characters.",
            code="invalid_idempotency_key",
        )
    fingerprint = request_fingerprint(payload)
    since = utcnow() - RETENTION
    existing = await session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == principal.id,
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
        )
    )
    if existing is not None and existing.created_at >= since:
        if existing.request_hash != fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was used with a different request body.",
                code="idempotency_key_reused",
            )
        return JSONResponse(
            existing.response_body,
            status_code=existing.status_code,
            headers={"Idempotent-Replayed": "true"},
        )
    if existing is not None:  # older than the retention window: the key may be reused
        await session.delete(existing)
        await session.flush()
    status, body = await produce()
    session.add(
        IdempotencyRecord(
            user_id=principal.id,
            scope=scope,
            key=key,
            request_hash=fingerprint,
            status_code=status,
            response_body=body,
        )
    )
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent request with the same key won the race
        raise Conflict(
            "A request with this Idempotency-Key is already being processed; retry.",
            code="idempotency_in_progress",
        ) from exc
    return JSONResponse(body, status_code=status)


async def purge_expired(session: AsyncSession) -> int:
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - RETENTION)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
