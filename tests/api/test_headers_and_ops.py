"""Response headers and what operations expose, from the probe's findings: JSON answers
without `X-Content-Type-Options: nosniff`; in production /docs, /openapi.json and /metrics
public, and /docs loading its script from a CDN."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.main import create_app


@asynccontextmanager
async def client_for(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def _not_found(r: httpx.Response) -> None:
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"
    assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


async def test_nosniff_on_every_kind_of_response(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    @app.get("/boom-nosniff")
    async def boom() -> None:
        raise RuntimeError("unexpected")

    org = await make_org()
    await app.state.storage.put_stream(
        "nosniff/a.txt", _one(b"<script>alert(1)</script>"), content_type="text/plain"
    )
    media = urlsplit(await app.state.storage.presign_get("nosniff/a.txt", ttl_s=60))
    answers = {
        "json": await client.get("/v1/me", headers=org.admin.headers),
        "error 401": await client.get("/v1/me"),
        "unknown path": await client.get("/v1/nothing-here"),
        "wrong method": await client.delete("/v1/auth/token"),
        "validation": await client.post("/v1/auth/token", json={}),
        "500": await client.get("/boom-nosniff"),
        "redirect": await client.get("/v1/me/", headers=org.admin.headers),
        "media": await client.get(f"{media.path}?{media.query}"),
        "metrics": await client.get("/metrics"),
        "docs asset": await client.get("/docs/assets/swagger-ui.css"),
        "cors preflight": await client.options(
            "/v1/me",
            headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
        ),
    }
    assert answers["redirect"].status_code == 307
    assert answers["media"].status_code == 200 and answers["500"].status_code == 500
    for kind, r in answers.items():
        assert r.headers.get_list("x-content-type-options") == ["nosniff"], kind


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.parametrize(
    "path", ["/docs", "/openapi.json", "/redoc", "/docs/assets/swagger-ui.css"]
)
async def test_production_serves_no_docs_by_default(make_settings: Any, path: str) -> None:
    async with client_for(make_settings(env="production")) as c:
        _not_found(await c.get(path))


async def test_production_serves_the_docs_when_asked(make_settings: Any) -> None:
    async with client_for(make_settings(env="production", public_docs=True)) as c:
        assert (await c.get("/docs")).status_code == 200
        assert (await c.get("/openapi.json")).json()["info"]["title"] == "peerpitch"
    # And development can turn them off.
    async with client_for(make_settings(public_docs=False)) as c:
        _not_found(await c.get("/docs"))
        _not_found(await c.get("/openapi.json"))


async def test_redoc_is_gone(client: httpx.AsyncClient) -> None:
    _not_found(await client.get("/redoc"))  # it loaded its script from a CDN


async def test_docs_load_no_third_party_code(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    # Every URL the page loads is this server's.
    urls = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in page and "https://" not in page
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000
    assert "SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).text

    # The policy allows this origin's scripts and the page's own inline start-up script
    # (by hash) and nothing else: no CDN, no injected inline script, no eval.
    policy = {}
    for directive in r.headers["content-security-policy"].split(";"):
        name, _, value = directive.strip().partition(" ")
        policy[name] = value
    inline = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert policy["script-src"].split() == ["'self'", f"'sha256-{digest}'"]
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["style-src"] == "'self'"
    assert "unsafe-eval" not in r.headers["content-security-policy"]
    assert "url: '/openapi.json'" in page


async def test_metrics_require_the_token_when_one_is_set(make_settings: Any) -> None:
    token = "metrics-token-0123456789abcdef"
    async with client_for(make_settings(metrics_token=token)) as c:
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Bearer {token}x"},
            {"Authorization": f"Basic {token}"},
            {"Authorization": token},
        ):
            r = await c.get("/metrics", headers=headers)
            assert r.status_code == 401, headers
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
            assert "peerpitch_http_requests_total" not in r.text
        r = await c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        # The refused attempts were counted like any request.
        assert 'route="/metrics",status="401"' in r.text


async def test_metrics_are_open_without_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert "peerpitch_http_requests_total" in r.text


async def test_schema_lists_413_where_a_body_is_taken(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    operations = [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    ]
    with_body = [(p, m, op) for p, m, op in operations if "requestBody" in op]
    assert with_body
    for path, method, op in with_body:
        codes = op["responses"]["413"]["content"]["application/json"]["schema"]["properties"][
            "error"
        ]["properties"]["code"]["enum"]
        assert "payload_too_large" in codes, (method, path)
    # The uploads keep their own codes beside it.
    part = doc["paths"]["/v1/uploads/{upload_id}/parts/{part_number}"]["put"]
    assert (
        "part_too_large"
        in part["responses"]["413"]["content"]["application/json"]["schema"]["properties"]["error"][
            "properties"
        ]["code"]["enum"]
    )
    assert "401" in doc["paths"]["/metrics"]["get"]["responses"]
    ready = doc["paths"]["/readyz"]["get"]["responses"]["503"]
    assert (
        "not_ready"
        in ready["content"]["application/json"]["schema"]["properties"]["error"]["properties"][
            "code"
        ]["enum"]
    )
