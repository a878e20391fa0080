"""The reference web app (web/) served at `/`: static ES modules, no build step.

`/` answers index.html with `{{ASSETS}}` replaced by `/assets/<version>`, where the version is
a digest of every asset (hls.js from node_modules included), so the assets carry long-lived
immutable caching while the page itself is revalidated on every load. The page's
Content-Security-Policy allows this origin's scripts and styles only, and requests to this
API and its media store (the S3 endpoint when media is on S3). The app itself speaks only the
public /v1 API with a bearer token, so it runs unchanged when hosted on another origin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
from fastapi import APIRouter, Response
from fastapi.responses import FileResponse, HTMLResponse

from app.config import Settings
from app.errors import NotFound

# The repository's web/ folder (an editable install, `make run`, the test suite).
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web"
# hls.js's ES module build from `npm ci` in web/ (the full build: it plays subtitle renditions).
VENDOR = {"vendor/hls.mjs": Path("node_modules/hls.js/dist/hls.min.mjs")}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class WebApp:
    version: str
    files: dict[str, Path]  # asset path under /assets/<version>/ → file
    page: str  # index.html naming this version's assets

    @classmethod
    def load(cls, root: Path) -> WebApp:
        files = {
            p.relative_to(root / "assets").as_posix(): p
            for p in sorted((root / "assets").rglob("*"))
            if p.is_file() and p.suffix in MEDIA_TYPES
        }
        for name, relative in VENDOR.items():
            if (root / relative).is_file():
                files[name] = root / relative
        digest = hashlib.sha256()
        for name, path in files.items():
            digest.update(name.encode() + b"\0" + path.read_bytes())
        version = digest.hexdigest()[:16]
        index = (root / "index.html").read_text(encoding="utf-8")
        return cls(version, files, index.replace("{{ASSETS}}", f"/assets/{version}"))


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def media_origins(settings: Settings) -> list[str]:
    """Where players fetch media from besides this API: signed redirects go to the S3
    endpoint (path-style addressing, app.storage.s3), or to this API's public URL."""
    origins = [_origin(settings.public_base_url)]
    if settings.storage == "s3":
        origins.append(
            _origin(settings.s3_endpoint_url) or f"https://s3.{settings.s3_region}.amazonaws.com"
        )
        if settings.s3_endpoint_url is None and settings.s3_region == "us-east-1":
            origins.append("https://s3.amazonaws.com")
    return sorted({o for o in origins if o})


def content_security_policy(settings: Settings) -> str:
    """Scripts and styles from this origin only (no inline code); data and media from this
    API and its media store; hls.js feeds the <video> through MediaSource (blob: URLs) and
    runs without a worker; the drawing tool's canvas exports nothing."""
    media = " ".join(media_origins(settings))
    return "; ".join(
        directive.strip()
        for directive in (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: {media}",
            # hls.js gives its caption tracks an empty data:,WEBVTT source (a Chrome menu fix).
            f"media-src 'self' blob: data: {media}",
            f"connect-src 'self' {media}",
            "font-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def build_router(settings: Settings) -> APIRouter | None:
    """The web app's routes, or None when it is off or its folder is missing."""
    root = settings.web_dir or DEFAULT_WEB_DIR
    if not settings.serve_web or not (root / "index.html").is_file():
        return None
    current = [WebApp.load(root)]
    policy = content_security_policy(settings)
    router = APIRouter(include_in_schema=False)

    @router.api_route("/", methods=["GET", "HEAD"])
    async def index() -> HTMLResponse:
        if not settings.is_production:
            # Development: an edited asset gets a new version at the next page load, so the
            # browser never keeps stale code under an immutable name (a few ms per page).
            current[0] = await anyio.to_thread.run_sync(WebApp.load, root)
        return HTMLResponse(
            current[0].page,
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": policy,
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
                "Cross-Origin-Opener-Policy": "same-origin",
            },
        )

    @router.api_route("/assets/{version}/{path:path}", methods=["GET", "HEAD"])
    async def asset(version: str, path: str) -> Response:
        web = current[0]
        file = web.files.get(path)
        # Only the current version exists: an old page must reload, never get new code
        # cached forever under its old name.
        if version != web.version or file is None:
            raise NotFound("No such asset.")
        return FileResponse(
            file,
            media_type=MEDIA_TYPES[file.suffix],
            headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"},
        )

    return router
