from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EventOut(BaseModel):
    id: uuid.UUID = Field(description="Stable: the same on every replay, delivery and retry.")
    type: str = Field(description="e.g. clip.ready, feedback.created")
    seq: int = Field(description="Strictly increasing per organization, in commit order.")
    occurred_at: datetime
    org_id: uuid.UUID
    data: dict[str, Any] = Field(description="The resource as the API shows it.")


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(
        description="The last seq read; pass it as `after` for the next page (null at the end)."
    )
