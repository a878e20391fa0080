from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.db import ping
from app.errors import ServiceUnavailable
from app.openapi_meta import errors

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and storage are reachable",
    responses=errors(503),
)
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await ping(request.app.state.engine)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}: {exc}"[:300]
    storage = getattr(request.app.state, "storage", None)
    if storage is not None:
        try:
            await storage.check()
            checks["storage"] = "ok"
        except Exception as exc:
            checks["storage"] = f"error: {type(exc).__name__}: {exc}"[:300]
    failing = {k: v for k, v in checks.items() if v != "ok"}
    if failing:
        raise ServiceUnavailable("A dependency is unreachable.", code="not_ready", details=checks)
    return JSONResponse({"status": "ok", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
