"""Error responses documented on every operation, all in the one envelope.

``errors(404, 409, codes={409: ["not_viewable"]})`` declares the statuses an operation can
answer with and, per status, the ``error.code`` values a client may branch on: the defaults
below plus the operation's own. The schema lists them as an enum, so a generic client (and
the fuzzing test) knows every code an operation can send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None
    request_id: str | None = None


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

# Codes any operation answering with the status may send.
DEFAULT_CODES: dict[int, tuple[str, ...]] = {
    400: ("bad_request",),
    401: ("unauthorized", "invalid_token", "token_expired", "token_revoked"),
    403: ("forbidden",),
    404: ("not_found",),
    409: ("conflict",),
    413: ("payload_too_large",),
    416: ("range_not_satisfiable",),
    422: ("validation_error",),
    429: ("too_many_requests",),
    503: ("unavailable", "database_unavailable", "storage_unavailable"),
}


def error_schema(codes: Iterable[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": sorted(set(codes))},
                    "message": {"type": "string"},
                    "details": {},
                    "request_id": {"type": ["string", "null"]},
                },
            }
        },
    }


def errors(
    *statuses: int, codes: Mapping[int, Iterable[str]] | None = None
) -> dict[int | str, dict[str, Any]]:
    extra = codes or {}
    unknown = set(extra) - set(statuses)
    if unknown:
        raise ValueError(f"codes given for undeclared statuses {sorted(unknown)}")
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {
                "application/json": {
                    "schema": error_schema((*DEFAULT_CODES.get(status, ()), *extra.get(status, ())))
                }
            },
        }
        for status in statuses
    }


AUTHED = (401, 422)
