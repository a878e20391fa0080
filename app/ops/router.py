from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.config import ConfigError, check_config
from app.db import ping
from app.errors import ServiceUnavailable, Unauthorized
from app.openapi_meta import errors

router = APIRouter(tags=["operations"])
log = logging.getLogger("peerpitch.ops")


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and storage are reachable",
    responses=errors(503, codes={503: ["not_ready"]}),
)
async def readyz(request: Request) -> JSONResponse:
    """`checks` (on 503: `error.details`) names each dependency `ok` or `unavailable`;
    why one is unavailable goes to the server's log under this request's id, never here
    (exception text can hold hosts, paths and credentials)."""
    checks: dict[str, str] = {}
    settings = request.app.state.settings
    try:
        check_config(settings, media=settings.run_embedded_worker)
        checks["config"] = "ok"
    except ConfigError as exc:
        log.warning("readiness: configuration error: %s", exc)
        checks["config"] = "invalid"
    try:
        await ping(request.app.state.engine)
        checks["database"] = "ok"
    except Exception:
        log.warning("readiness: the database is unavailable", exc_info=True)
        checks["database"] = "unavailable"
    storage = getattr(request.app.state, "storage", None)
    if storage is not None:
        try:
            await storage.check()
            checks["storage"] = "ok"
        except Exception:
            log.warning("readiness: storage is unavailable", exc_info=True)
            checks["storage"] = "unavailable"
    if any(state != "ok" for state in checks.values()):
        raise ServiceUnavailable("A dependency is unreachable.", code="not_ready", details=checks)
    return JSONResponse({"status": "ok", "checks": checks})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses=errors(401),
)
async def metrics(request: Request) -> Response:
    """When `PEERPITCH_METRICS_TOKEN` is set, only with `Authorization: Bearer <that token>`;
    open when it is not (development)."""
    expected = request.app.state.settings.metrics_token
    if expected:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        # Constant time, so the token cannot be guessed byte by byte from response times.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), expected.encode()
        ):
            raise Unauthorized("The metrics token is missing or wrong.")
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
