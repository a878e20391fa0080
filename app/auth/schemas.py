from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field


class TokenRequest(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    org_id: uuid.UUID | None = Field(
        default=None,
        description="The organization to sign in to. Needed only when the email and "
        "password open accounts in several organizations (`409 organization_required` "
        "lists them).",
    )


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Also ends the login this refresh token belongs to (for access tokens "
        "issued before they named their login).",
    )


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")
