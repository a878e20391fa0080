from __future__ import annotations

from typing import Any

import httpx
import pytest


def _envelope(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    # The id in the body is the one in the header, so a bug report can quote either.
    assert body["error"]["request_id"] == r.headers["X-Request-ID"]
    return body["error"]  # type: ignore[no-any-return]


async def test_malformed_json_is_422_envelope(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/auth/token", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert _envelope(r)["code"] == "validation_error"


async def test_missing_field_is_422_envelope(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/auth/token", json={"email": "a@b.com"})
    assert r.status_code == 422
    err = _envelope(r)
    assert any(d["loc"][-1] == "password" for d in err["details"])


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert _envelope(r)["code"] == "not_found"
    r = await client.delete("/v1/auth/token")
    assert r.status_code == 405
    assert _envelope(r)["code"] == "method_not_allowed"


async def test_unexpected_error_is_500_without_traceback(
    app: Any, client: httpx.AsyncClient
) -> None:
    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    r = await client.get("/boom")
    assert r.status_code == 500
    err = _envelope(r)
    assert err["code"] == "internal_error"
    assert len(r.headers["x-request-id"]) == 32
    assert "secret internals" not in r.text and "Traceback" not in r.text


async def test_health_ready_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["database"] == "ok"
    await client.get("/v1/me")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert 'peerpitch_http_requests_total{method="GET",route="/v1/me",status="401"}' in r.text
    assert "peerpitch_http_request_duration_seconds_bucket" in r.text


async def test_readyz_reports_database_down(
    make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from app.main import create_app

    # The probe's finding: the body held the driver's exception text (host, port, paths).
    broken = create_app(
        make_settings(database_url="postgresql+asyncpg://nobody:hunter2@127.0.0.1:1/none")
    )
    caplog.set_level(logging.WARNING, logger="peerpitch")
    transport = httpx.ASGITransport(app=broken, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/readyz", headers={"X-Request-ID": "ready-1"})
    assert r.status_code == 503
    err = _envelope(r)
    assert err["code"] == "not_ready"
    # Which dependency is down, and nothing about why.
    assert err["details"] == {"config": "ok", "database": "unavailable", "storage": "ok"}
    for leak in ("127.0.0.1", "hunter2", "Errno", "refused", "asyncpg"):
        assert leak not in r.text, leak
    # The why is in the log, under the request's id.
    logged = [rec for rec in caplog.records if rec.exc_info and rec.name == "peerpitch.ops"]
    assert len(logged) == 1
    assert getattr(logged[0], "request_id", None) == "ready-1"
    assert "database" in logged[0].getMessage()


async def test_readyz_reports_storage_down(
    app: Any, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable() -> None:
        raise OSError(13, "Permission denied", "/srv/secret/media")

    monkeypatch.setattr(app.state.storage, "check", unreachable)
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert _envelope(r)["details"] == {
        "config": "ok",
        "database": "ok",
        "storage": "unavailable",
    }
    assert "/srv/secret" not in r.text and "Permission" not in r.text


async def test_request_id_appears_in_log_lines(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from app.logging import JsonFormatter

    caplog.set_level(logging.INFO, logger="peerpitch.access")
    await client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    records = [r for r in caplog.records if r.name == "peerpitch.access"]
    assert records
    assert '"request_id": "trace-42"' in JsonFormatter().format(records[-1])


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz")
    assert len(r.headers["x-request-id"]) == 32


async def test_cors_allows_localhost_in_development(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/v1/me",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    r = await client.options(
        "/v1/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers
    r = await client.get("/healthz", headers={"Origin": "http://127.0.0.1:3000"})
    exposed = {h.strip() for h in r.headers["access-control-expose-headers"].split(",")}
    # What a browser app must read: caching, created resources, back-off, replays, support.
    assert {"ETag", "Location", "Retry-After", "X-Request-ID", "Idempotent-Replayed"} <= exposed


async def test_production_allows_no_cross_origin_by_default(make_settings: Any) -> None:
    from app.main import create_app

    prod = create_app(make_settings(env="production"))
    transport = httpx.ASGITransport(app=prod, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.options(
            "/v1/me",
            headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
        )
    assert "access-control-allow-origin" not in r.headers


async def test_local_part_urls_answer_cors_preflight(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/v1/uploads/01a21dce-e6c1-7df0-8727-485c2a7f9497/parts/1",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert (
        "ETag"
        in (
            (await client.get("/healthz", headers={"Origin": "http://localhost:5173"})).headers[
                "access-control-expose-headers"
            ]
        )
    )


async def test_unexpected_error_is_logged_with_the_request_id(
    app: Any, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    @app.get("/boom-logged")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    caplog.set_level(logging.INFO, logger="peerpitch")
    r = await client.get("/boom-logged", headers={"X-Request-ID": "trace-500"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "trace-500"
    failures = [rec for rec in caplog.records if rec.exc_info]
    assert len(failures) == 1
    assert getattr(failures[0], "request_id", None) == "trace-500"
    access = [rec for rec in caplog.records if rec.name == "peerpitch.access" and not rec.exc_info]
    assert access[-1].__dict__["status"] == 500


async def test_storage_errors_render_as_app_errors(app: Any, client: httpx.AsyncClient) -> None:
    from app.storage import StorageError, UploadNotFound

    @app.get("/storage-down")
    async def down() -> None:
        raise StorageError("S3 InternalError: secret bucket detail")

    @app.get("/storage-refused")
    async def refused() -> None:
        raise UploadNotFound("no such multipart upload")

    r = await client.get("/storage-down")
    assert r.status_code == 503
    assert _envelope(r)["code"] == "storage_unavailable"
    assert r.headers["retry-after"] == "5"
    assert "secret" not in r.text
    r = await client.get("/storage-refused")
    assert r.status_code == 409
    assert _envelope(r) == {
        "code": "upload_not_active",
        "message": "no such multipart upload",
        "details": None,
        "request_id": r.headers["X-Request-ID"],
    }
    assert "retry-after" not in r.headers


async def test_integrity_error_is_a_conflict(app: Any, client: httpx.AsyncClient) -> None:
    from sqlalchemy.exc import IntegrityError

    @app.get("/race")
    async def race() -> None:
        raise IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed"))

    r = await client.get("/race")
    assert r.status_code == 409
    assert _envelope(r)["code"] == "conflict"
    assert "UNIQUE" not in r.text


async def test_text_the_database_cannot_store_is_422_and_nothing_is_written(
    client: httpx.AsyncClient, make_org: Any, database_url: str
) -> None:
    # Found by the schema fuzzer: PostgreSQL text cannot hold NUL, and the driver's error
    # answered 500. SQLite stores it; either way the answer is never a server error.
    org = await make_org()
    body = {"key": "renewal", "name": "Re\u0000newal"}
    r = await client.post("/v1/stages", json=body, headers=org.admin.headers)
    if database_url.startswith("postgresql"):
        assert r.status_code == 422, r.text
        assert _envelope(r)["code"] == "validation_error"
        stages = (await client.get("/v1/stages", headers=org.admin.headers)).json()
        assert "renewal" not in [s["key"] for s in stages]
    else:
        assert r.status_code == 201, r.text
