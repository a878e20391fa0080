"""Running workers: as a process (`peerpitch worker`, or `python -m workers.main`), or
embedded in the API process (a background task on its event loop).

Handlers are found by importing modules that register into ``app.jobs.registry.registry``:
``HANDLER_MODULES`` here (the product's, ``app.tasks``), plus any listed in the environment
variable ``PEERPITCH_WORKER_EXTRA_MODULES`` (comma-separated importable module paths).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import ConfigError, Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.jobs.registry import JobServices, Registry, registry
from app.tasks import check_startup
from workers.runtime import DEFAULT_GRACE_S, Worker

log = logging.getLogger("peerpitch.worker")

# The application's handler modules (each registers its kinds on import).
HANDLER_MODULES: tuple[str, ...] = ("app.tasks",)
EXTRA_MODULES_ENV = "PEERPITCH_WORKER_EXTRA_MODULES"

ServicesFactory = Callable[[Settings], JobServices | Awaitable[JobServices]]


def load_handlers(extra: Iterable[str] = ()) -> Registry:
    """Import the handler modules and return the registry they filled."""
    from_env = [m.strip() for m in os.environ.get(EXTRA_MODULES_ENV, "").split(",")]
    for module in (*HANDLER_MODULES, *extra, *from_env):
        if module:
            importlib.import_module(module)
    return registry


def default_services(settings: Settings) -> JobServices:
    """What the product's handlers need: the configured media storage."""
    from app.storage import build_storage

    base_url = settings.public_base_url or "http://127.0.0.1:8000"
    return JobServices(storage=build_storage(settings, base_url=base_url))


async def _build_services(factory: ServicesFactory | None, settings: Settings) -> JobServices:
    if factory is None:
        return default_services(settings)
    services = factory(settings)
    if inspect.isawaitable(services):
        return await services
    return services


async def _serve(
    settings: Settings,
    *,
    concurrency: int | None,
    services_factory: ServicesFactory | None,
    registry: Registry,
    grace_s: float,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    worker: Worker | None = None

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set() and worker is not None:
            log.warning("%s again: cancelling running jobs now", sig.name)
            worker.force_stop()
        else:
            log.info("%s: finishing running jobs (up to %g s), then exiting", sig.name, grace_s)
            stop.set()

    # Installed first, so that a signal during startup also ends the process cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    engine = make_engine(settings.database_url)
    try:
        worker = Worker(
            settings,
            engine,
            make_sessionmaker(engine),
            await _build_services(services_factory, settings),
            registry,
            concurrency,
            grace_s=grace_s,
        )
        await worker.run(stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await engine.dispose()


def run_worker(
    settings: Settings,
    *,
    concurrency: int | None = None,
    services_factory: ServicesFactory | None = None,
    registry: Registry | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    configure_logging: bool = True,
) -> int:
    """Run a worker process until SIGTERM/SIGINT; returns the exit status.

    The first signal stops claiming and gives running jobs ``grace_s`` to finish, then
    cancels and releases the rest; a second signal skips the rest of the grace period.
    """
    if configure_logging:
        from app.logging import configure_logging as configure

        configure(settings.log_format, settings.log_level)
    # A ConfigError (e.g. whisper without a model folder) ends the command with its message.
    check_startup(settings)
    try:
        asyncio.run(
            _serve(
                settings,
                concurrency=concurrency,
                services_factory=services_factory,
                registry=registry if registry is not None else load_handlers(),
                grace_s=grace_s,
            )
        )
    except Exception:
        log.exception("worker crashed")
        return 1
    return 0


class EmbeddedWorker:
    """A worker running as a background task of the API's event loop."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._stop = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name="embedded-worker")

    async def _run(self) -> None:
        try:
            await self.worker.run(self._stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("embedded worker crashed")

    async def stop(self) -> None:
        """Stop claiming, let running jobs finish within the grace period, release the
        rest. Idempotent."""
        self._stop.set()
        await asyncio.shield(self.task)


def start_embedded_worker(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    services: JobServices,
    registry: Registry | None = None,
    concurrency: int | None = None,
    grace_s: float = DEFAULT_GRACE_S,
) -> EmbeddedWorker:
    """Start a worker on the running event loop (call from the FastAPI lifespan), sharing
    the API's engine; ``await handle.stop()`` on shutdown."""
    worker = Worker(
        settings,
        engine,
        sessionmaker,
        services,
        registry if registry is not None else load_handlers(),
        concurrency,
        grace_s=grace_s,
    )
    return EmbeddedWorker(worker)


@asynccontextmanager
async def embedded_worker(app: FastAPI) -> AsyncIterator[None]:
    """The API's background work (``create_app(background=embedded_worker)``): a worker on
    the API's event loop and engine while PEERPITCH_EMBEDDED_WORKER allows it."""
    settings: Settings = app.state.settings
    if not settings.run_embedded_worker:
        yield
        return
    try:
        check_startup(settings)  # the API does not start with a worker that cannot work
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        raise
    handle = start_embedded_worker(
        settings,
        app.state.engine,
        app.state.sessionmaker,
        services=JobServices(storage=app.state.storage),
    )
    try:
        yield
    finally:
        await handle.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.main", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=None, help="jobs at a time")
    parser.add_argument(
        "--grace-s", type=float, default=DEFAULT_GRACE_S, help="shutdown grace period"
    )
    args = parser.parse_args(argv)
    return run_worker(get_settings(), concurrency=args.concurrency, grace_s=args.grace_s)


if __name__ == "__main__":
    sys.exit(main())
