from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ViewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position_ms: int = Field(ge=0, le=2**31 - 1, description="Where the player is now.")
    watched_ms: int = Field(
        ge=0, le=2**31 - 1, description="Total time watched; the stored value only grows."
    )
    completed: bool = Field(
        default=False,
        description="The player reached the end; once true, stays true. It counts (in "
        "`Progress.completed` and exemplar completion rates) only once `watched_ms` reaches "
        "90 % of the clip's duration.",
    )


class Progress(BaseModel):
    position_ms: int
    watched_ms: int
    completed: bool = Field(
        description="The end was reported and `watched_ms` reaches 90 % of the clip's duration."
    )
    last_watched_at: datetime


@dataclass(frozen=True)
class ViewStats:
    """What clip responses show about views: distinct viewers and the caller's progress."""

    view_count: int = 0
    mine: Progress | None = None


class ViewerOut(BaseModel):
    user_id: uuid.UUID
    name: str
    progress: Progress
