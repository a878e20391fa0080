from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from app.clips.models import ClipStatus
from app.reviews.models import ReviewStatus
from app.speech_analysis.schemas import StageDelivery
from app.users.schemas import PersonOut

Score = Annotated[int, Field(ge=1, le=5)]


class ReviewRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reviewer_id: uuid.UUID
    message: str = Field(default="", max_length=2000)
    due_at: AwareDatetime | None = Field(
        default=None, description="With a UTC offset (e.g. `2030-01-31T17:00:00Z`)."
    )

    @field_validator("due_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # Compared with the clock and stored as UTC; an offset that pushes the time past
        # year 9999 cannot be.
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise ValueError("out of range") from exc


class ReviewComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scores: dict[Annotated[str, Field(min_length=1, max_length=64)], Score] = Field(
        default_factory=dict,
        max_length=50,
        description="Rubric: a 1..5 score per skill of the clip's stage.",
    )
    summary: str = Field(default="", max_length=5000)


class ReviewDecline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class ReviewedClip(BaseModel):
    id: uuid.UUID
    title: str
    stage: str
    status: ClipStatus
    owner_id: uuid.UUID


class ReviewRequestOut(BaseModel):
    id: uuid.UUID
    clip: ReviewedClip
    requester: PersonOut
    reviewer: PersonOut
    status: ReviewStatus
    message: str
    due_at: datetime | None
    overdue: bool = Field(description="Still pending after its due date.")
    scores: dict[str, int]
    summary: str
    decline_reason: str
    responded_at: datetime | None
    created_at: datetime


class ScoreStats(BaseModel):
    count: int
    average: float | None = Field(description="Plain mean of every score.")
    weighted_average: float | None = Field(
        description="Recency-weighted mean: a score's weight halves every 60 days."
    )
    last_scored_at: datetime | None


class FeedbackStats(BaseModel):
    open: int
    resolved: int


class TrendWindow(BaseModel):
    start: datetime
    end: datetime
    score_count: int
    score_average: float | None
    feedback_count: int


class Trend(BaseModel):
    windows: list[TrendWindow] = Field(description="The last 90 days in three 30-day windows.")
    change: float | None = Field(
        description="Latest minus earliest window average among windows with scores."
    )
    direction: str | None = Field(description="improving, declining or steady; null if unknown.")


class SkillProfileItem(BaseModel):
    key: str
    name: str
    scores: ScoreStats
    feedback: FeedbackStats
    trend: Trend


class StageProfile(BaseModel):
    key: str
    name: str
    skills: list[SkillProfileItem]
    delivery: StageDelivery = Field(
        description="Delivery of the user's pitches of the stage that have a ready speech "
        "analysis of their current media (`pitches` 0 and empty `points` when none has)."
    )


class SkillProfile(BaseModel):
    user: PersonOut
    generated_at: datetime
    stages: list[StageProfile]
