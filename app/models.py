"""Imports every domain's models so the metadata is complete (Alembic, tests)."""

from app.auth.models import LoginFailure, RefreshToken
from app.db import Base
from app.orgs.models import Organization
from app.stages.models import Skill, Stage
from app.users.models import User

__all__ = ["Base", "LoginFailure", "Organization", "RefreshToken", "Skill", "Stage", "User"]
