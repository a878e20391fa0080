from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.deps import PrincipalDep, SessionDep
from app.notifications import service
from app.notifications.models import Notification
from app.notifications.schemas import MarkedRead, MarkRead, NotificationOut, UnreadCount
from app.openapi_meta import errors
from app.pagination import Page, PageParams, page_params

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


def notification_out(n: Notification) -> NotificationOut:
    return NotificationOut.of(n, n.actor)


@router.get(
    "",
    summary="The caller's notifications, newest first",
    response_model=Page[NotificationOut],
    responses=errors(401, 422),
)
async def list_notifications(
    session: SessionDep,
    principal: PrincipalDep,
    page: Annotated[PageParams, Depends(page_params)],
    unread: bool | None = None,
) -> Page[NotificationOut]:
    items, cursor = await service.list_notifications(session, principal, unread, page)
    return Page[NotificationOut](items=[notification_out(n) for n in items], next_cursor=cursor)


@router.get(
    "/unread-count",
    summary="How many of the caller's notifications are unread (for a badge)",
    response_model=UnreadCount,
    responses=errors(401),
)
async def unread_count(session: SessionDep, principal: PrincipalDep) -> UnreadCount:
    return UnreadCount(unread=await service.unread_count(session, principal))


@router.post(
    "/read",
    summary="Mark notifications read: the given ids, or all",
    response_model=MarkedRead,
    responses=errors(401, 422),
)
async def mark_read(body: MarkRead, session: SessionDep, principal: PrincipalDep) -> MarkedRead:
    marked = await service.mark_read(session, principal, None if body.all else body.ids)
    return MarkedRead(marked=marked, unread_count=await service.unread_count(session, principal))
