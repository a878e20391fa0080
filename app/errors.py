"""Typed application errors and the single JSON error envelope."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("peerpitch.errors")


class AppError(Exception):
    status_code = 400
    code = "bad_request"
    message = "The request could not be processed."
    headers: dict[str, str] | None = None
    # When true the request's session commits what it wrote before the error.
    keep_changes = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or type(self).message
        if code:
            self.code = code
        self.details = details
        if headers:
            self.headers = headers
        super().__init__(self.message)


class BadRequest(AppError):
    pass


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    message = "Authentication is required."
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    message = "The request body is too large."


class Unprocessable(AppError):
    status_code = 422
    code = "validation_error"
    message = "The request is not valid."


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    message = "Too many requests; try again later."


class ServiceUnavailable(AppError):
    status_code = 503
    code = "unavailable"
    message = "The service is not available."


class InvalidMedia(AppError):
    status_code = 422
    code = "invalid_media"
    message = "The media file is not valid."


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "too_many_requests",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()
        ]
        return JSONResponse(
            error_body("validation_error", "The request is not valid.", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=exc.headers
        )

    install_integrity_handler(app)
    install_storage_handler(app)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "An unexpected error occurred."), status_code=500
        )


def install_integrity_handler(app: FastAPI) -> None:
    """A unique/foreign-key race that slipped past a service check is a conflict, not a 500."""
    from sqlalchemy.exc import IntegrityError

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error: %s", exc.orig)
        return JSONResponse(
            error_body("conflict", "The request conflicts with existing data."), status_code=409
        )


def install_storage_handler(app: FastAPI) -> None:
    """Storage errors that escape a service: a client mistake or an unreachable store."""
    from app.storage.base import (
        InvalidKey,
        InvalidPart,
        InvalidRange,
        ObjectNotFound,
        PartTooLarge,
        StorageError,
        UploadNotFound,
    )

    mapping: list[tuple[type[StorageError], int, str]] = [
        (ObjectNotFound, 404, "not_found"),
        (UploadNotFound, 409, "upload_not_active"),
        (InvalidPart, 409, "invalid_part"),
        (InvalidRange, 416, "range_not_satisfiable"),
        (InvalidKey, 422, "invalid_key"),
        (PartTooLarge, 413, "part_too_large"),
    ]

    @app.exception_handler(StorageError)
    async def _storage_error(_request: Request, exc: StorageError) -> JSONResponse:
        for cls, status, code in mapping:
            if isinstance(exc, cls):
                return JSONResponse(error_body(code, str(exc) or code), status_code=status)
        log.warning("storage unavailable: %s", exc)
        return JSONResponse(
            error_body("storage_unavailable", "Media storage is unavailable; retry later."),
            status_code=503,
            headers={"Retry-After": "5"},
        )
