"""Imports every domain's models so the metadata is complete (Alembic, tests, the app)."""

from app.auth.models import LoginFailure, RefreshToken
from app.clips.models import Clip
from app.db import Base
from app.idempotency.models import IdempotencyRecord
from app.jobs.models import Job
from app.orgs.models import Organization
from app.stages.models import Skill, Stage
from app.uploads.models import Upload
from app.users.models import User
from app.views.models import ClipView

__all__ = [
    "Base",
    "Clip",
    "ClipView",
    "IdempotencyRecord",
    "Job",
    "LoginFailure",
    "Organization",
    "RefreshToken",
    "Skill",
    "Stage",
    "Upload",
    "User",
]
