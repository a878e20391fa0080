"""Application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

import app.models  # every table in the metadata before the first query
import app.tasks  # noqa: F401  (composition root: hooks such as the webhook fan-out)
from app.auth.caller import CALLERS_INFO, CallerCache
from app.auth.router import router as auth_router
from app.clips.router import router as clips_router
from app.clips.uploads_router import router as uploads_router
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.errors import install_error_handlers
from app.events.router import router as events_router
from app.events.stream import EventHub
from app.exemplars.prep import PrepContent
from app.exemplars.router import router as exemplars_router
from app.feedback.router import router as feedback_router
from app.hotreads import HotReads
from app.notifications.router import router as notifications_router
from app.openapi_schema import install_openapi, operation_id
from app.ops.docs import install_docs
from app.ops.limits import BodyLimitMiddleware, streamed_routes
from app.ops.middleware import Metrics, RequestContextMiddleware
from app.ops.router import router as ops_router
from app.playback.router import router as playback_router
from app.playback.service import TextCache
from app.playback.states import ClipStates
from app.readcache.cache import ReadCache
from app.reviews.router import router as reviews_router
from app.search.router import router as search_router
from app.speech_analysis.router import router as speech_router
from app.stages.router import router as stages_router
from app.storage import S3Storage, build_storage
from app.storage.media_router import router as media_router
from app.users.router import router as users_router
from app.views.router import router as views_router
from app.web.router import build_router as build_web_router
from app.webhooks.router import router as webhooks_router

log = logging.getLogger("peerpitch")

API_DESCRIPTION = """\
The open backend for peer video learning in sales teams.

Every error answers with one envelope: `{"error": {"code", "message", "details"}}`.
Lists are cursor-paginated: `?limit=&cursor=` → `{"items": [...], "next_cursor": ...}`.
A request body over the server's limit (`PEERPITCH_MAX_JSON_BYTES`, 1 MiB by default) answers
`413 payload_too_large`; upload parts and `PUT /v1/clips/{clip_id}/source` have their own limits.
"""

# The routes that stream their body to storage and check its size themselves (a part's
# declared size, the upload limit); every other body is held to settings.max_json_bytes.
STREAMED_BODIES = (
    ("PUT", "/v1/uploads/{upload_id}/parts/{part_number}"),
    ("PUT", "/v1/clips/{clip_id}/source"),
)


# Background work that runs as long as the API does, e.g. an in-process job worker; given
# by the process entry point (workers.asgi), since the application never imports the runtime.
Background = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings | None = None, *, background: Background | None = None
) -> FastAPI:
    settings = settings or get_settings()
    settings.secret_key = settings.resolved_secret_key()
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        storage = app.state.storage
        if isinstance(storage, S3Storage) and not settings.is_production:
            # Development convenience; production runs `peerpitch init-storage` once.
            await storage.ensure_bucket(settings.cors_origins, allow_any_origin=True)
        # This process's live event streams (GET /v1/events/stream) share one hub.
        app.state.event_hub = hub = EventHub(engine)
        await hub.start()
        try:
            async with background(app) if background is not None else nullcontext():
                yield
        finally:
            await hub.close()
            await app.state.hot_reads.close()
            await engine.dispose()

    app = FastAPI(
        title="peerpitch",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # /docs is ours (app.ops.docs: no CDN); no /redoc. Off in production unless asked.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.serve_docs else None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.hot_reads = HotReads(engine, settings.database_url)
    app.state.clip_states = ClipStates(app.state.hot_reads)
    app.state.callers = CallerCache(app.state.hot_reads, settings.auth_recheck_s)
    app.state.sessionmaker = make_sessionmaker(engine)
    # Sessions of this app tell its caller cache which users they changed (app.auth.caller).
    app.state.sessionmaker.configure(info={CALLERS_INFO: app.state.callers})
    app.state.metrics = Metrics()
    app.state.playlist_cache = TextCache()
    app.state.feedback_pages = ReadCache[bytes](settings.read_cache_entries)
    app.state.prep_kits = ReadCache[PrepContent](settings.read_cache_entries)
    app.state.storage = build_storage(
        settings, base_url=settings.public_base_url or "http://127.0.0.1:8000"
    )

    install_error_handlers(app)
    install_openapi(app)
    routers = (
        ops_router,
        auth_router,
        users_router,
        stages_router,
        clips_router,
        uploads_router,
        media_router,
        playback_router,
        views_router,
        feedback_router,
        reviews_router,
        notifications_router,
        exemplars_router,
        speech_router,
        search_router,
        events_router,
        webhooks_router,
    )
    for router in routers:
        app.include_router(router)
    if settings.serve_docs:
        install_docs(app)
    # The reference web app at `/` (web/), when its folder is there.
    web_router = build_web_router(settings)
    if web_router is not None:
        app.include_router(web_router)

    # Innermost of the three: CORS and the request context also cover its 413.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_json_bytes,
        streamed=streamed_routes(app.routes, STREAMED_BODIES),
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=settings.allowed_origin_regex,
        allow_credentials=False,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=[
            "ETag",
            "Location",
            "Retry-After",
            "X-Request-ID",
            "Idempotent-Replayed",
            "Content-Range",
            "Accept-Ranges",
        ],
        max_age=600,
    )
    # Outermost, so the request id and metrics cover CORS answers and errors alike.
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
