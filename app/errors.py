"""Typed application errors and the single JSON error envelope."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.logging import request_id_var

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


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached (restart, failover, killed connection): the client
    retries; the pool drops the broken connection so the next request reconnects."""

    code = "database_unavailable"
    message = "The database is briefly unavailable; retry shortly."
    headers = {"Retry-After": "2"}


def is_database_unavailable(exc: BaseException) -> bool:
    """A lost or refused database connection, as opposed to a bad statement.

    SQLAlchemy marks a dropped connection ``connection_invalidated``; asyncpg's refusals
    (``ConnectionRefusedError``, ``CannotConnectNowError`` while PostgreSQL starts) arrive
    raw or wrapped as OperationalError/InterfaceError; a pool that cannot hand out a
    connection in time raises its TimeoutError.
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
            return True
        orig = exc.orig
        return _is_connection_error(orig) if orig is not None else False
    return isinstance(exc, PoolTimeoutError) or _is_connection_error(exc)


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError):  # refused, reset, aborted
        return True
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    # Class 08 "connection exception"; 57P01-57P03 shutdown / crash / cannot connect now.
    if sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}:
        return True
    name = type(exc).__name__
    # asyncpg's classes, by name so this module does not import a driver.
    return name in {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "InterfaceError",
        "ConnectionFailureError",
    }


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The envelope; ``request_id`` ties the answer to the server's log line."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "request_id": request_id_var.get(),
        }
    }


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


def _is_data_error(exc: Exception) -> bool:
    """SQLSTATE class 22 ("data exception"): drivers do not all map it to DataError (asyncpg's
    NUL-in-text error arrives as a plain DBAPIError)."""
    if isinstance(exc, DataError):
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and str(sqlstate or "").startswith("22")


def _envelope(
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, details), status_code=status_code, headers=headers
    )


def handle_app_error(exc: AppError) -> Response:
    if exc.status_code >= 500:
        log.warning("%s %s: %s", exc.status_code, exc.code, exc)
    return _envelope(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


async def handle_error(_request: Request, exc: Exception) -> Response:
    """The one place an error becomes a response: every error, the JSON envelope.

    Registered for the errors FastAPI knows how to route (see install_error_handlers); the
    request middleware calls it for everything else, after logging, so the 500 carries the
    request id. Never a traceback or an exception's text in an unexpected error's body.
    """
    if isinstance(exc, AppError):
        return handle_app_error(exc)
    if isinstance(exc, RequestValidationError):
        details = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()
        ]
        return _envelope(422, "validation_error", "The request is not valid.", details)
    if isinstance(exc, StarletteHTTPException):  # routing: 404, 405, ...
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return _envelope(exc.status_code, code, message, headers=exc.headers)
    if is_database_unavailable(exc):
        log.warning("database unavailable: %s", getattr(exc, "orig", None) or type(exc).__name__)
        return handle_app_error(DatabaseUnavailable())
    if _is_data_error(exc):
        # A value the database cannot hold (PostgreSQL text with a NUL character, a number
        # out of its column's range): the client's input, and the transaction rolls back.
        log.info("data error: %s", getattr(exc, "orig", exc))
        return _envelope(
            422,
            "validation_error",
            "A value cannot be stored: text must not contain NUL characters and numbers "
            "must fit their field.",
        )
    if isinstance(exc, IntegrityError):
        # A unique/foreign-key race that slipped past a service check: a conflict, not a 500.
        log.info("integrity error: %s", exc.orig)
        return _envelope(409, "conflict", "The request conflicts with existing data.")
    return _envelope(500, "internal_error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Route the errors FastAPI catches itself to handle_error. Unexpected exceptions are
    rendered by RequestContextMiddleware (app.ops.middleware), which logs them with the
    request id and then calls handle_error: a handler registered for ``Exception`` would sit
    outside every middleware and lose the request id."""
    for error in (
        AppError,
        RequestValidationError,
        StarletteHTTPException,
        IntegrityError,
        DataError,
    ):
        app.add_exception_handler(error, handle_error)
