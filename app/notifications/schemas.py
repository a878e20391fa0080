from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.notifications.models import Notification, NotificationKind
from app.users.models import User
from app.users.schemas import PersonOut


class NotificationOut(BaseModel):
    id: uuid.UUID
    kind: NotificationKind
    actor: PersonOut | None
    clip_id: uuid.UUID | None
    feedback_id: uuid.UUID | None
    review_request_id: uuid.UUID | None
    data: dict[str, Any] = Field(description="A summary to render without more requests.")
    read_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, n: Notification, actor: User | None) -> NotificationOut:
        return cls(
            id=n.id,
            kind=n.kind,
            actor=PersonOut.model_validate(actor) if actor else None,
            clip_id=n.clip_id,
            feedback_id=n.feedback_id,
            review_request_id=n.review_request_id,
            data=n.data,
            read_at=n.read_at,
            created_at=n.created_at,
        )


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[uuid.UUID] | None = Field(default=None, max_length=500)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> MarkRead:
        if (self.ids is None) == (not self.all):
            raise ValueError("send either ids or all: true")
        return self


class MarkedRead(BaseModel):
    marked: int = Field(description="How many notifications changed from unread to read.")
    unread_count: int


class UnreadCount(BaseModel):
    unread: int = Field(description="The caller's unread notifications.")
