"""Helpers shared by the feedback, review and notification tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.api import DURATION_MS, playable_clip

__all__ = ["DURATION_MS", "playable_clip", "post_feedback", "statements_during"]


async def post_feedback(
    client: httpx.AsyncClient, actor: Any, clip_id: str, **body: Any
) -> httpx.Response:
    payload: dict[str, Any] = {"body": "Ask why before you demo.", "timestamp_ms": 1000, **body}
    return await client.post(f"/v1/clips/{clip_id}/feedback", json=payload, headers=actor.headers)


class statements_during:  # noqa: N801 - used as a context manager, reads like a phrase
    """Collect the SQL statements the app's engine runs inside the block."""

    def __init__(self, app: Any) -> None:
        self.engine = app.state.engine.sync_engine
        self.statements: list[str] = []

    def _record(self, *args: Any) -> None:
        self.statements.append(str(args[2]))

    def __enter__(self) -> list[str]:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._record)
        return self.statements

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._record)
