from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.users.schemas import PersonOut

MAX_BODY = 5000
MAX_SHAPES = 50
MAX_ANNOTATION_BYTES = 16 * 1024
MAX_MENTIONS = 20
MAX_POSITION_MS = 2**31 - 1

Coordinate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Point = tuple[Coordinate, Coordinate]
ShapeType = Literal["arrow", "rect", "ellipse", "line", "freehand"]

# Two points: start and end for arrows and lines, opposite corners of the bounding box for
# rectangles and ellipses. A freehand stroke is a polyline.
_POINTS: dict[str, tuple[int, int]] = {
    "arrow": (2, 2),
    "line": (2, 2),
    "rect": (2, 2),
    "ellipse": (2, 2),
    "freehand": (2, 1000),
}


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ShapeType
    points: list[Point] = Field(description="[x, y] pairs, 0..1 of the frame's width/height.")
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")

    @model_validator(mode="after")
    def _point_count(self) -> Shape:
        low, high = _POINTS[self.type]
        if not low <= len(self.points) <= high:
            expected = str(low) if low == high else f"{low}..{high}"
            raise ValueError(f"a {self.type} needs {expected} points, got {len(self.points)}")
        return self


class Annotation(BaseModel):
    """A drawing over the frame at the feedback's timestamp."""

    model_config = ConfigDict(extra="forbid")

    shapes: list[Shape] = Field(min_length=1, max_length=MAX_SHAPES)

    @model_validator(mode="after")
    def _size(self) -> Annotation:
        size = len(json.dumps(self.model_dump(mode="json"), separators=(",", ":")))
        if size > MAX_ANNOTATION_BYTES:
            raise ValueError(f"an annotation is at most {MAX_ANNOTATION_BYTES} bytes, got {size}")
        return self


def _plain_text(body: str) -> str:
    if not body.strip():
        raise ValueError("must not be blank")
    if "\x00" in body:
        raise ValueError("must not contain NUL characters")
    return body


Body = Annotated[str, Field(min_length=1, max_length=MAX_BODY, description="Plain text.")]
SkillKey = Annotated[str, Field(min_length=1, max_length=64)]


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Body
    timestamp_ms: int | None = Field(
        default=None,
        ge=0,
        le=MAX_POSITION_MS,
        description="Required for a new thread; ignored on a reply (it takes its thread's).",
    )
    end_ms: int | None = Field(
        default=None, ge=1, le=MAX_POSITION_MS, description="End of a range; ignored on a reply."
    )
    skill: SkillKey | None = None
    parent_id: uuid.UUID | None = None
    annotation: Annotation | None = None
    response_clip_id: uuid.UUID | None = Field(
        default=None, description="A video reply: a clip of kind `feedback` you uploaded."
    )
    mentions: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_MENTIONS)

    _check_body = field_validator("body")(_plain_text)


class FeedbackUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Body | None = None
    timestamp_ms: int | None = Field(default=None, ge=0, le=MAX_POSITION_MS)
    end_ms: int | None = Field(default=None, ge=1, le=MAX_POSITION_MS)
    skill: SkillKey | None = None
    annotation: Annotation | None = None

    _check_body = field_validator("body")(_plain_text)


class FeedbackOut(BaseModel):
    id: uuid.UUID
    clip_id: uuid.UUID
    parent_id: uuid.UUID | None
    author: PersonOut
    body: str = Field(description="Plain text as written; clients must escape it.")
    timestamp_ms: int
    end_ms: int | None
    skill: str | None
    annotation: dict[str, Any] | None
    response_clip_id: uuid.UUID | None
    mentions: list[uuid.UUID]
    resolved_at: datetime | None
    resolved_by: PersonOut | None
    edited_at: datetime | None
    deleted: bool = Field(description="A deleted thread root kept so its replies stay readable.")
    helpful_count: int
    reacted_by_me: bool
    created_at: datetime


class ThreadOut(FeedbackOut):
    reply_count: int
    replies: list[FeedbackOut] = Field(description="In creation order.")


class HelpfulOut(BaseModel):
    feedback_id: uuid.UUID
    helpful_count: int
    reacted_by_me: bool
