from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.speech_analysis.schemas import PrepDelivery
from app.users.schemas import PersonOut


class ExemplarMark(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        default=None, max_length=1000, description="Why this is great; kept when omitted."
    )


class ExemplarClip(BaseModel):
    id: uuid.UUID
    title: str
    owner: PersonOut
    stage: str
    skills: list[str]
    duration_ms: int | None
    poster_url: str | None = Field(description="Signed, expiring; no Authorization needed.")


class ExemplarOut(BaseModel):
    clip: ExemplarClip
    note: str
    score: float = Field(description="0..1; see the README for the formula.")
    view_count: int = Field(description="Distinct viewers.")
    completion_rate: float = Field(
        description="Share of viewers who completed it: reached the end having watched at "
        "least 90 % of it."
    )
    helpful_count: int = Field(description="Helpful marks on the feedback left on it.")
    endorsed: bool = Field(description="Marked by a coach or an admin.")
    marked_at: datetime


class ExemplarLinkOut(BaseModel):
    exemplar: ExemplarOut
    source: Literal["auto", "manual"]
    reason: str
    score: float


class ExemplarLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exemplar_id: uuid.UUID = Field(description="The exemplar's clip id.")


class PrepExemplar(BaseModel):
    clip_id: uuid.UUID
    title: str
    owner_name: str
    skills: list[str]
    duration_ms: int | None
    note: str
    score: float
    hls_url: str
    mp4_url: str | None = Field(description="For offline viewing; download before the meeting.")
    poster_url: str | None


class PrepFeedback(BaseModel):
    id: uuid.UUID
    clip_id: uuid.UUID
    clip_title: str
    timestamp_ms: int
    end_ms: int | None
    skill: str | None
    author_name: str
    body: str = Field(description="Plain text, cut to 280 characters (see `truncated`).")
    truncated: bool
    helpful_count: int
    resolved: bool
    created_at: datetime
    deep_link: str = Field(description="Opens the app at this clip and moment.")


class PrepStage(BaseModel):
    key: str
    name: str
    my_open_feedback: int


class PrepKit(BaseModel):
    stage: str = Field(description="The stage this kit is for (asked, or the first of `stages`).")
    generated_at: datetime
    urls_expire_at: datetime
    stages: list[PrepStage] = Field(
        description="Every stage; those where the caller has open feedback first (most first)."
    )
    exemplars: list[PrepExemplar]
    tips: list[PrepFeedback] = Field(description="Most helpful feedback of the stage.")
    my_open_feedback: list[PrepFeedback] = Field(
        description="Unresolved feedback on the caller's clips of the stage, newest first."
    )
    delivery: PrepDelivery = Field(
        description="The caller's delivery at the stage (their newest pitch with a ready "
        "speech analysis) next to the median of the stage's analysed exemplars."
    )
