from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from app.uploads.models import UploadStatus


class UploadedPart(BaseModel):
    number: int
    size: int
    etag: str


class UploadOut(BaseModel):
    id: uuid.UUID
    clip_id: uuid.UUID
    status: UploadStatus
    size_bytes: int
    part_size: int
    part_count: int
    uploaded_parts: list[UploadedPart]
    expires_at: datetime


class PartUrlsRequest(BaseModel):
    part_numbers: list[int] = Field(min_length=1, max_length=1000)

    @field_validator("part_numbers")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        if len(value) != len(set(value)):
            raise ValueError("part numbers must not repeat")
        return value


class PartTargetOut(BaseModel):
    number: int
    url: str
    method: str
    headers: dict[str, str]


class PartUrlsOut(BaseModel):
    parts: list[PartTargetOut]
    expires_at: datetime


class CompletedPart(BaseModel):
    number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=128)


class CompleteRequest(BaseModel):
    parts: list[CompletedPart] = Field(min_length=1, max_length=10_000)
