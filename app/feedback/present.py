"""Feedback as the API shows it, built from the repository's projection (FeedbackItem):
for responses, and for the events that carry the same shape."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from app.feedback.repository import FeedbackItem
from app.feedback.schemas import FeedbackOut
from app.users.models import Role

if TYPE_CHECKING:
    from app.feedback.service import Thread


def _person(person_id: uuid.UUID | None, name: str | None, role: Role | None) -> Any:
    if person_id is None:
        return None
    return {"id": str(person_id), "name": name, "role": role}


def feedback_fields(item: FeedbackItem) -> dict[str, Any]:
    """An item's FeedbackOut fields as plain data: a page holds hundreds of items, and
    building models for them costs more than the queries. (Ids as text because the
    driver's UUID type is slow to serialize.)"""
    parent_id, response_clip_id, mentions = (
        item.parent_id,
        item.response_clip_id,
        item.mentions_json,
    )
    return {
        "id": str(item.id),
        "clip_id": str(item.clip_id),
        "parent_id": None if parent_id is None else str(parent_id),
        "author": _person(item.author_id, item.author_name, item.author_role),
        "body": item.body,
        "timestamp_ms": item.timestamp_ms,
        "end_ms": item.end_ms,
        "skill": item.skill,
        "annotation": item.annotation,
        "response_clip_id": None if response_clip_id is None else str(response_clip_id),
        "mentions": json.loads(mentions) if mentions else [],
        "resolved_at": item.resolved_at,
        "resolved_by": _person(item.resolver_id, item.resolver_name, item.resolver_role),
        "edited_at": item.edited_at,
        "deleted": item.deleted_at is not None,
        "helpful_count": item.helpful_count,
        "reacted_by_me": bool(item.reacted_by_me),
        "created_at": item.created_at,
    }


def feedback_out(item: FeedbackItem) -> FeedbackOut:
    return FeedbackOut.model_validate(feedback_fields(item))


def thread_fields(thread: Thread) -> dict[str, Any]:
    replies = [feedback_fields(r) for r in thread.replies]
    return {**feedback_fields(thread.root), "reply_count": len(replies), "replies": replies}


def event_data(item: FeedbackItem) -> dict[str, Any]:
    """The item for an event: the response's fields without what depends on the caller
    (plain data; the outbox serializes it as responses are)."""
    fields = feedback_fields(item)
    del fields["reacted_by_me"]
    return fields
