"""Error responses documented on every operation, all in the one envelope."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, invalid or expired credentials",
    403: "Not allowed for the caller's role",
    404: "Not found (or belongs to another organization)",
    409: "Conflicts with the current state",
    413: "Payload too large",
    416: "Range not satisfiable",
    422: "Validation error",
    429: "Too many requests",
    503: "A dependency (database or media storage) is unavailable; retry later",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {
        code: {"model": ErrorEnvelope, "description": _DESCRIPTIONS.get(code, "Error")}
        for code in codes
    }


AUTHED = (401, 422)
