"""Helpers of the live-stream tests: the test app served by a real uvicorn on a loopback
port in the test's own event loop (httpx's ASGITransport buffers a response until it ends,
so an endless stream needs a real server), and a Server-Sent Events reader."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from app.events import service as events
from tests.helpers.waiting import eventually


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` (its lifespan already running, as the ``app`` fixture does) on a free loopback
    port; yields the base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done(), what="uvicorn to start")
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


@dataclass(frozen=True)
class Message:
    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def seq(self) -> int:
        assert self.id is not None
        return int(self.id)


class Stream:
    """An open event stream, read one message at a time (comments and the ``retry:``
    advice are kept apart)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments: list[str] = []
        self.retry_ms: int | None = None

    async def next(self, timeout: float = 10) -> Message | None:
        """The next message; None when the stream ended."""
        async with asyncio.timeout(timeout):
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line == "":
                    if "data" in fields or "event" in fields:
                        return Message(
                            fields.get("id"), fields.get("event", "message"), fields.get("data", "")
                        )
                    fields = {}
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "retry":
                    self.retry_ms = int(value)
                else:
                    fields[name] = value
            return None

    async def take(self, count: int, timeout: float = 10) -> list[Message]:
        out: list[Message] = []
        for _ in range(count):
            message = await self.next(timeout)
            assert message is not None, f"the stream ended after {out}"
            out.append(message)
        return out

    async def until(self, event_id: uuid.UUID, timeout: float = 10) -> list[Message]:
        """Every message up to and including the one of event ``event_id``."""
        seen: list[Message] = []
        while True:
            message = await self.next(timeout)
            assert message is not None, f"the stream ended before {event_id}: {seen}"
            seen.append(message)
            if message.event != "auth_expired" and message.json()["id"] == str(event_id):
                return seen

    async def rest(self, timeout: float = 10) -> list[Message]:
        """Every message until the stream ends."""
        seen: list[Message] = []
        while (message := await self.next(timeout)) is not None:
            seen.append(message)
        return seen


@asynccontextmanager
async def open_stream(
    base_url: str,
    token: str,
    *,
    last_event_id: int | None = None,
    params: dict[str, Any] | None = None,
) -> AsyncIterator[Stream]:
    """GET /v1/events/stream on a connection of its own (leaving the block closes it), once
    the server has registered the stream (its first frame, the ``retry:`` advice, came)."""
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
        client.stream("GET", "/v1/events/stream", headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        async with asyncio.timeout(10):
            async for line in stream._lines:
                if line.startswith("retry:"):
                    stream.retry_ms = int(line.split(":", 1)[1])
                    break
        yield stream


async def record(
    app: Any,
    org_id: str,
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    clip_id: str | None = None,
    user_id: str | None = None,
) -> uuid.UUID:
    """Record one event in a transaction of its own, as a domain does; returns its id."""
    async with app.state.sessionmaker.begin() as session:
        row = await events.record(
            session,
            org_id=uuid.UUID(org_id),
            type=event_type,
            data=data or {"id": clip_id or user_id},
            clip_id=uuid.UUID(clip_id) if clip_id else None,
            user_id=uuid.UUID(user_id) if user_id else None,
        )
    return row.id


def ids(messages: list[Message]) -> list[str]:
    """The event ids (uuids) of ``messages``."""
    return [m.json()["id"] for m in messages]
