"""The request-body limit, enforced while the body arrives: nothing is buffered or parsed first.

Every request body counts, on every route, authenticated or not, except the routes that
stream an upload to storage and enforce their own limits as they go (``streamed``). A
declared ``Content-Length`` over the limit is refused before the application runs, so no
endpoint acts on a request that is then refused; a chunked body is refused as soon as the
count passes the limit, and the rest is never read: the answer says ``Connection: close``,
so the server closes the connection instead of draining what the client still sends.

Starlette's ``RequestBodyLimitMiddleware`` (and FastAPI's ``max_body_size``) do not fit:
with a large ``Content-Length`` they let an endpoint that reads no body run and only swap
its answer for a plain-text 413, and exempting a route takes a limit on the route itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence

from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import PayloadTooLarge, handle_error

StreamedBody = Callable[[Scope], bool]


class _BodyTooLarge(Exception):
    """Raised into the application by ``receive`` once the limit is passed."""


def streamed_routes(
    routes: Sequence[BaseRoute], endpoints: Collection[tuple[str, str]]
) -> StreamedBody:
    """A test for requests to the (method, path template) ``endpoints``, matched with the
    routes' own patterns before routing runs. Fails at startup when one is missing, so a
    renamed upload route cannot silently fall under the JSON limit."""
    patterns = {
        (method, route.path): route.path_regex
        for route in iter_route_contexts(routes)
        for method in route.methods or ()
        if (method, route.path) in endpoints
    }
    missing = set(endpoints) - set(patterns)
    if missing:
        raise RuntimeError(f"streamed-body routes not found: {sorted(missing)}")
    chosen: list[tuple[str, re.Pattern[str]]] = [(m, p) for (m, _), p in patterns.items()]

    def matches(scope: Scope) -> bool:
        path = _route_path(scope)
        return any(scope["method"] == method and pattern.match(path) for method, pattern in chosen)

    return matches


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path a proxy may have put in front."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, streamed: StreamedBody) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes and not self.streamed(scope):
            await self._refuse(scope, receive, send)
            return

        received = 0
        exempt: bool | None = None  # asked once, when the count first passes the limit
        response_started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, exempt, refused
            message = await receive()
            if message["type"] != "http.request" or exempt:
                return message
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                if exempt is None:
                    exempt = self.streamed(scope)
                if not exempt:
                    if not response_started:
                        refused = True
                        await self._refuse(scope, receive, send)
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                # The 413 was the answer; what the application makes of the aborted read
                # (FastAPI turns it into a 400) goes nowhere.
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not refused:
                raise  # the response had started: abort it, the server drops the connection

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(
            f"The request body is larger than the limit of {self.max_bytes} bytes.",
            details={"max_bytes": self.max_bytes},
            headers={"Connection": "close"},
        )
        response = await handle_error(Request(scope, receive), error)
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we see it
    return None
