"""Helpers shared by the feedback, review and notification tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.api import DURATION_MS, playable_clip
from tests.helpers.sql_count import statements_during

__all__ = ["DURATION_MS", "playable_clip", "post_feedback", "statements_during"]


async def post_feedback(
    client: httpx.AsyncClient, actor: Any, clip_id: str, **body: Any
) -> httpx.Response:
    payload: dict[str, Any] = {"body": "Ask why before you demo.", "timestamp_ms": 1000, **body}
    return await client.post(f"/v1/clips/{clip_id}/feedback", json=payload, headers=actor.headers)
