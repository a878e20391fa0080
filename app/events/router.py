from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import AdminDep, SessionDep
from app.errors import Unprocessable
from app.events import service
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
