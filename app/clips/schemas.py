from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.clips.models import Clip, ClipKind, ClipStatus, Visibility
from app.db import utcnow
from app.uploads.models import Upload, UploadStatus
from app.users.schemas import PersonOut
from app.views.schemas import Progress, ViewStats

SkillKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
# What the size columns (BIGINT) hold. The configured PEERPITCH_MAX_UPLOAD_BYTES is lower and
# is checked before anything is written (413 file_too_large); the schema is static.
MAX_SIZE_BYTES = 2**63 - 1
SizeBytes = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_SIZE_BYTES,
        description="The file's size in bytes; above the server's upload limit "
        "(PEERPITCH_MAX_UPLOAD_BYTES, 8 GiB by default): 413 `file_too_large`.",
    ),
]


class ClipError(BaseModel):
    code: str
    message: str


class RenditionOut(BaseModel):
    width: int
    height: int
    bandwidth: int


class UploadSummary(BaseModel):
    id: uuid.UUID
    part_size: int
    part_count: int
    expires_at: datetime

    @classmethod
    def of(cls, upload: Upload) -> UploadSummary:
        return cls(
            id=upload.id,
            part_size=upload.part_size,
            part_count=upload.part_count,
            expires_at=upload.expires_at,
        )


class OpenUpload(UploadSummary):
    """The upload a clip is waiting for, so an app that lost its id can resume it."""

    status: UploadStatus = Field(
        description="`active` while parts may be sent; `expired` once past `expires_at` "
        "(start a new one with POST /v1/clips/{id}/upload)."
    )

    @classmethod
    def of(cls, upload: Upload, *, now: datetime | None = None) -> OpenUpload:
        status = upload.status
        if status == UploadStatus.active and upload.expires_at <= (now or utcnow()):
            status = UploadStatus.expired
        return cls(
            id=upload.id,
            status=status,
            part_size=upload.part_size,
            part_count=upload.part_count,
            expires_at=upload.expires_at,
        )


class ClipOut(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    owner_id: uuid.UUID
    owner: PersonOut
    title: str
    description: str
    kind: ClipKind
    stage: str
    skills: list[str]
    visibility: Visibility
    status: ClipStatus
    progress: float = Field(description="0..1 while processing.")
    error: ClipError | None
    duration_ms: int | None
    width: int | None
    height: int | None
    is_exemplar: bool
    fps: float | None
    has_audio: bool | None
    renditions: list[RenditionOut] = Field(description="Published HLS variants, lowest first.")
    filename: str
    content_type: str
    size_bytes: int
    created_at: datetime
    updated_at: datetime
    view_count: int = Field(default=0, description="Distinct users who watched it.")
    my_progress: Progress | None = Field(
        default=None, description="The caller's watch progress, if they watched it."
    )
    poster_url: str | None = Field(
        default=None,
        description="Signed, short-lived poster JPEG (no Authorization needed); null until the "
        "clip has a poster.",
    )
    upload: OpenUpload | None = Field(
        default=None,
        description="Only in GET /v1/clips/{id}, only for the owner, only while the clip awaits "
        "its source: the open upload to resume (GET /v1/uploads/{upload.id}).",
    )

    @classmethod
    def of(
        cls,
        clip: Clip,
        stats: ViewStats | None = None,
        *,
        poster_url: str | None = None,
        upload: OpenUpload | None = None,
    ) -> ClipOut:
        """``clip.owner`` must be loaded (joinedload, or set on a new clip)."""
        stats = stats or ViewStats()
        error = None
        if clip.error_code:
            error = ClipError(code=clip.error_code, message=clip.error_message or "")
        return cls(
            id=clip.id,
            org_id=clip.org_id,
            owner_id=clip.owner_id,
            owner=PersonOut.model_validate(clip.owner),
            title=clip.title,
            description=clip.description,
            kind=clip.kind,
            stage=clip.stage,
            skills=list(clip.skills),
            visibility=clip.visibility,
            status=clip.status,
            progress=clip.progress,
            error=error,
            duration_ms=clip.duration_ms,
            width=clip.width,
            height=clip.height,
            is_exemplar=clip.is_exemplar,
            fps=clip.fps,
            has_audio=clip.has_audio,
            renditions=[
                RenditionOut(width=v["width"], height=v["height"], bandwidth=v["bandwidth"])
                for v in (clip.media or {}).get("variants", [])
            ],
            filename=clip.filename,
            content_type=clip.content_type,
            size_bytes=clip.size_bytes,
            created_at=clip.created_at,
            updated_at=clip.updated_at,
            view_count=stats.view_count,
            my_progress=stats.mine,
            poster_url=poster_url,
            upload=upload,
        )


def _unique(skills: list[str] | None) -> list[str] | None:
    if skills is not None and len(skills) != len(set(skills)):
        raise ValueError("skills must not repeat")
    return skills


class ClipCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    kind: ClipKind
    stage: str = Field(min_length=1, max_length=64)
    skills: list[SkillKey] = Field(default_factory=list, max_length=20)
    visibility: Visibility = Visibility.org
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=1, max_length=127, pattern=r"^video/[A-Za-z0-9.+-]+$")
    size_bytes: SizeBytes
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")

    _check_skills = field_validator("skills")(_unique)


class ClipUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    stage: str | None = Field(default=None, min_length=1, max_length=64)
    skills: list[SkillKey] | None = Field(default=None, max_length=20)
    visibility: Visibility | None = None

    _check_skills = field_validator("skills")(_unique)


class UploadRestart(BaseModel):
    """A new upload of a clip's source: the upload fields of ClipCreate."""

    model_config = ConfigDict(extra="forbid")

    size_bytes: SizeBytes
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    filename: str | None = Field(
        default=None, min_length=1, max_length=255, description="Kept when omitted."
    )
    content_type: str | None = Field(
        default=None,
        min_length=1,
        max_length=127,
        pattern=r"^video/[A-Za-z0-9.+-]+$",
        description="Kept when omitted.",
    )


class ClipCreated(BaseModel):
    clip: ClipOut
    upload: UploadSummary
