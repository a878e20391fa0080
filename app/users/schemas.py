from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.users.models import Role


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: Role
    org_id: uuid.UUID
    is_active: bool
    created_at: datetime
    updated_at: datetime


class UserCreate(BaseModel):
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    role: Role
    password: str = Field(min_length=8, max_length=1024)


class MeUpdate(BaseModel):
    """The caller's own changes. A new password needs the current one."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    password: str | None = Field(
        default=None,
        min_length=8,
        max_length=1024,
        description="The new password; requires `current_password`. Ends every other login.",
    )
    current_password: str | None = Field(default=None, min_length=1, max_length=1024)


class UserUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    is_active: bool | None = None


class PersonOut(BaseModel):
    """How other people appear next to what they wrote: no email, no account details."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
