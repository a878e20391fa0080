from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from app.deps import AdminDep, AuthenticatedDep, SessionDep
from app.errors import ServiceUnavailable, Unprocessable
from app.events import service, stream
from app.events.schemas import EventOut, EventPage
from app.events.types import is_valid_pattern
from app.openapi_meta import errors

router = APIRouter(prefix="/v1/events", tags=["events"])
# A seq is a signed 64-bit column.
MAX_SEQ = 2**63 - 1


def parse_patterns(types: str | None) -> list[str] | None:
    if not types:
        return None
    patterns = [p.strip() for p in types.split(",") if p.strip()]
    bad = [p for p in patterns if not is_valid_pattern(p)]
    if bad:
        raise Unprocessable(
            f"Unknown event types: {', '.join(bad)}.", code="unknown_event_type", details=bad
        )
    return patterns


@router.get(
    "",
    summary="Replay the organization's events in seq order (admins)",
    response_model=EventPage,
    responses=errors(401, 403, 422, codes={422: ["unknown_event_type"]}),
)
async def list_events(
    session: SessionDep,
    principal: AdminDep,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Events with a greater seq.")] = 0,
    types: Annotated[
        str | None,
        Query(
            max_length=1000,
            description="Comma-separated types or patterns: clip.*,feedback.created",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> EventPage:
    patterns = parse_patterns(types)
    rows = await service.events_after(
        session, principal.org_id, after, limit=limit, patterns=patterns
    )
    items = [EventOut.model_validate(service.payload(r)) for r in rows]
    return EventPage(items=items, next_cursor=str(rows[-1].seq) if len(rows) == limit else None)


_STREAM_DESCRIPTION = """\
Server-Sent Events (`text/event-stream`) for the signed-in user: events about the clips they
may see (`clip.*`, `upload.*`, `feedback.*`, `review_request.*`, `exemplar.*`) and their own
`notification.created`, as they commit. Each message is `id: <seq>`, `event: <type>`,
`data: <the event as GET /v1/events shows it>`.

Resume after a disconnect with the `Last-Event-ID` header (browsers' EventSource sends it) or
`?last_event_id=`: the missed events follow in order, then live ones; without either the
stream starts with the next event. A comment line every 15 s keeps proxies from closing it.
When the access token expires the stream sends `event: auth_expired` with
`data: {"code": "token_expired"}` (`"invalid_token"` when the user was deactivated) and
ends: refresh the token and reconnect. A stream that falls far behind is closed; reconnect
with the last id received.
"""

_MAX_SEQ_PARAM = {"ge": 0, "le": MAX_SEQ}


@router.get(
    "/stream",
    summary="Live events for the signed-in user (Server-Sent Events)",
    description=_STREAM_DESCRIPTION,
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "An endless stream of events",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **errors(401, 422, 503),
    },
)
async def stream_events(
    request: Request,
    session: SessionDep,
    authenticated: AuthenticatedDep,
    last_event_id: Annotated[
        int | None, Query(description="Resume after this seq (as Last-Event-ID).", **_MAX_SEQ_PARAM)
    ] = None,
    last_event_id_header: Annotated[
        int | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this seq; wins over the query parameter.",
            **_MAX_SEQ_PARAM,
        ),
    ] = None,
) -> EventSourceResponse:
    hub: stream.EventHub | None = getattr(request.app.state, "event_hub", None)
    if hub is None:
        raise ServiceUnavailable("Live events are not available on this server.")
    hub.ensure_capacity()
    user = authenticated.principal.user
    after = last_event_id_header if last_event_id_header is not None else last_event_id
    start, current = await stream.start_position(session, user.org_id, after)
    return EventSourceResponse(
        stream.event_stream(
            hub,
            user,
            start,
            current,
            stream.access_token_expiry(request.headers.get("authorization")),
        ),
        ping=stream.PING_S,
        sep="\n",
        send_timeout=stream.SEND_TIMEOUT_S,
    )
