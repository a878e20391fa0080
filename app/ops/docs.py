"""/docs: Swagger UI served entirely by this API, its script and stylesheet from the
fastapi-offline package, so the page loads no third-party code; a Content-Security-Policy
holds it to that. Installed only when the settings serve the docs (app.config.serve_docs)."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def content_security_policy(page: bytes) -> str:
    """Scripts: this origin's files and the page's own inline start-up script, by hash;
    styles: this origin's stylesheet (React sets element styles through the DOM, which the
    policy allows); images include data: URIs (Swagger UI's icons). Requests go to this
    origin only; the page cannot be framed. Checked in headless Chromium: the page renders,
    "Try it out" runs, no violation is reported."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' {hashes}".strip(),
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def install_docs(app: FastAPI) -> None:
    assert app.openapi_url is not None, "the docs page needs the served schema"
    openapi_url = app.openapi_url
    app.mount(
        ASSETS_PATH,
        StaticFiles(packages=[("fastapi_offline", "static")]),
        name="docs-assets",
    )

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        )
        page.headers["Content-Security-Policy"] = content_security_policy(bytes(page.body))
        return page
