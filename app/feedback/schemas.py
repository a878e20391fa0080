from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from app.users.schemas import PersonOut

MAX_BODY = 5000
MAX_SHAPES = 50
# Points across all shapes of one annotation: the bound that keeps validating a drawing cheap.
# PEERPITCH_ANNOTATION_MAX_POINTS may lower it (app.feedback.service); the schema is static.
MAX_ANNOTATION_POINTS = 2000
# The stored drawing: room for MAX_ANNOTATION_POINTS points at full float precision.
MAX_ANNOTATION_BYTES = 128 * 1024
MAX_MENTIONS = 20
MAX_POSITION_MS = 2**31 - 1
MAX_SHAPE_TEXT = 280
MAX_STROKE_WIDTH = 100.0

Coordinate = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# An array of exactly two numbers, not a tuple: a tuple's JSON schema uses `prefixItems`,
# which the Swift and Kotlin client generators cannot read.
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]
ShapeType = Literal["arrow", "rect", "ellipse", "line", "freehand", "text"]

# Two points: start and end for arrows and lines, opposite corners of the bounding box for
# rectangles and ellipses. A freehand stroke is a polyline. A text label is anchored at one
# point (its top-left corner).
_POINTS: dict[str, tuple[int, int]] = {
    "arrow": (2, 2),
    "line": (2, 2),
    "rect": (2, 2),
    "ellipse": (2, 2),
    "freehand": (2, 1000),
    "text": (1, 1),
}


def _absent(value: object) -> bool:
    return value is None


class Shape(BaseModel):
    """One shape of a drawing. Optional fields that are not set are left out of responses
    (and of the stored drawing), so drawings stored before they existed read the same."""

    model_config = ConfigDict(extra="forbid")

    type: ShapeType
    points: list[Point] = Field(
        description="[x, y] pairs, 0..1 of the frame's width/height: two for an arrow, a "
        "line, a rect or an ellipse, 2..1,000 for freehand, one (the anchor) for text."
    )
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")
    stroke_width: float | None = Field(
        default=None,
        gt=0,
        le=MAX_STROKE_WIDTH,
        allow_inf_nan=False,
        exclude_if=_absent,
        description="Line thickness in thousandths of the frame's width (3 = 0.3 %); "
        "absent: the client's default.",
    )
    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SHAPE_TEXT,
        exclude_if=_absent,
        description="The label of a `text` shape (required there, not allowed on others).",
    )

    @model_validator(mode="after")
    def _point_count(self) -> Shape:
        low, high = _POINTS[self.type]
        if not low <= len(self.points) <= high:
            expected = str(low) if low == high else f"{low}..{high}"
            raise ValueError(f"a {self.type} needs {expected} points, got {len(self.points)}")
        if self.type == "text":
            if self.text is None:
                raise ValueError("a text shape needs its text")
            _plain_text(self.text)
        elif self.text is not None:
            raise ValueError(f"a {self.type} has no text")
        return self


def too_many_points(count: int, limit: int) -> str | None:
    if count <= limit:
        return None
    return f"an annotation has at most {limit} points across its shapes, got {count}"


class Annotation(BaseModel):
    """A drawing over the frame at the feedback's timestamp."""

    model_config = ConfigDict(extra="forbid")

    shapes: list[Shape] = Field(
        min_length=1,
        max_length=MAX_SHAPES,
        description=f"At most {MAX_ANNOTATION_POINTS:,} points across all shapes, and "
        f"{MAX_ANNOTATION_BYTES // 1024} KiB as JSON.",
    )

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        """Shapes and points counted on the raw input, before any of them is validated
        (pydantic checks a list's length only after validating its items): an oversize
        drawing is refused in microseconds instead of holding the event loop while each of
        its points is validated."""
        shapes = data.get("shapes") if isinstance(data, dict) else None
        if not isinstance(shapes, list):
            return data  # not the raw form: the field validation says what is wrong
        if len(shapes) > MAX_SHAPES:
            raise ValueError(f"an annotation has at most {MAX_SHAPES} shapes, got {len(shapes)}")
        points = sum(
            len(shape["points"])
            for shape in shapes
            if isinstance(shape, dict) and isinstance(shape.get("points"), list)
        )
        problem = too_many_points(points, MAX_ANNOTATION_POINTS)
        if problem:
            raise ValueError(problem)
        return data

    @model_validator(mode="after")
    def _size(self) -> Annotation:
        # Serialized by pydantic-core (a tenth of json.dumps' cost at 2,000 points).
        size = len(self.model_dump_json().encode())
        if size > MAX_ANNOTATION_BYTES:
            raise ValueError(f"an annotation is at most {MAX_ANNOTATION_BYTES} bytes, got {size}")
        return self

    def point_count(self) -> int:
        return sum(len(shape.points) for shape in self.shapes)

    def stored(self) -> dict[str, Any]:
        """The JSON kept in the database and sent back: unset optional fields left out."""
        return self.model_dump(mode="json")


def _plain_text(body: str) -> str:
    if not body.strip():
        raise ValueError("must not be blank")
    if "\x00" in body:
        raise ValueError("must not contain NUL characters")
    return body


Body = Annotated[str, Field(min_length=1, max_length=MAX_BODY, description="Plain text.")]
SkillKey = Annotated[str, Field(min_length=1, max_length=64)]
Position = Annotated[int, Field(ge=0, le=MAX_POSITION_MS)]


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


def _not_null(value: object) -> object:
    # Field validators do not run on defaults: a None here was sent as an explicit null
    # (the schema does not allow it; without this check it would mean "unchanged").
    if value is None:
        raise ValueError("may be left out but not null")
    return value


class FeedbackUpdate(BaseModel):
    """Only the fields sent change. `end_ms`, `skill` and `annotation` may be null (cleared);
    `body` and `timestamp_ms` may not."""

    model_config = ConfigDict(extra="forbid")

    body: Body | SkipJsonSchema[None] = None
    timestamp_ms: Position | SkipJsonSchema[None] = None
    end_ms: int | None = Field(default=None, ge=1, le=MAX_POSITION_MS)
    skill: SkillKey | None = None
    annotation: Annotation | None = None

    @field_validator("body")
    @classmethod
    def _check_body(cls, body: str | None) -> str:
        if body is None:
            raise ValueError("may be left out but not null")
        return _plain_text(body)

    _check_timestamp = field_validator("timestamp_ms")(_not_null)


class FeedbackOut(BaseModel):
    id: uuid.UUID
    clip_id: uuid.UUID
    parent_id: uuid.UUID | None
    author: PersonOut
    body: str = Field(description="Plain text as written; clients must escape it.")
    timestamp_ms: int
    end_ms: int | None
    skill: str | None
    annotation: Annotation | None
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
