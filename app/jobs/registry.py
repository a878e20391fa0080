"""The job contract: which code runs for which job kind, what a handler gets (its context
and the typed services), and which periodic tasks a worker runs.

Handler modules register on import::

    from app.jobs.kinds import TRANSCODE_CLIP
    from app.jobs.registry import JobContext, register

    @register(TRANSCODE_CLIP)
    async def transcode(ctx: JobContext) -> None: ...

The worker runtime (``workers/``) claims jobs and calls these handlers; this module knows
nothing of it, so the application never imports the runtime.

A handler may run more than once for one job (a worker can die after the work but before
recording it), so it must be idempotent. It raises ``PermanentJobError`` for errors that
retrying cannot fix; any other exception is retried with backoff.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpcore
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.jobs.kinds import PRODUCT_KINDS, JobKind
from app.jobs.service import LeaseLost
from app.storage.base import Storage


class MissingHandlers(RuntimeError):
    """A worker was asked to run a registry that lacks handlers for required kinds."""


@dataclass(frozen=True, kw_only=True)
class JobServices:
    """What handlers and periodic tasks use besides the database: built once per worker."""

    storage: Storage
    # Webhook deliveries (app.webhooks): the DNS resolver (host, port) -> IPs and the network
    # backend they connect through; None means the system's. Tests inject loopback-only ones.
    webhook_resolver: Callable[[str, int], Awaitable[list[str]]] | None = None
    webhook_connector: httpcore.AsyncNetworkBackend | None = None


@dataclass(kw_only=True)
class TaskContext:
    """What a periodic task gets: the worker's settings, database and services."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    services: JobServices
    worker_id: str


@dataclass(kw_only=True)
class JobContext(TaskContext):
    """What a job handler gets: the job, plus everything a periodic task gets."""

    job_id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    # Set by the worker: heartbeats (with progress, if given), False when the lease is lost.
    report_progress: Callable[[float | None], Awaitable[bool]] | None = field(
        default=None, repr=False
    )
    # Progress writes are throttled: ffmpeg reports several times a second.
    progress_interval_s: float = 1.0
    _last_report: float = field(default=-math.inf, init=False, repr=False)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempts >= self.max_attempts

    async def progress(self, fraction: float) -> None:
        """Record progress in [0, 1] (this also extends the lease). Raises ``LeaseLost``
        when another worker has taken the job over, so the handler stops."""
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_report < self.progress_interval_s:
            return
        self._last_report = now
        if self.report_progress is not None and not await self.report_progress(fraction):
            raise LeaseLost(str(self.job_id))

    async def heartbeat(self) -> None:
        """Extend the lease now, e.g. before publishing a result. Raises ``LeaseLost`` when
        another worker has taken the job over: its result must not be published."""
        if self.report_progress is not None and not await self.report_progress(None):
            raise LeaseLost(str(self.job_id))


Handler = Callable[[JobContext], Coroutine[Any, Any, None]]
PeriodicFn = Callable[[TaskContext], Awaitable[None]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class PeriodicTask:
    """Runs every ``interval_s`` in every worker process, so ``fn`` must be idempotent
    and safe to run concurrently with itself on other machines (e.g. one UPDATE … WHERE
    expired)."""

    name: str
    interval_s: float
    fn: PeriodicFn


class Registry:
    """Handlers by job kind, and periodic tasks. ``required`` kinds must all have a handler
    before a worker may run this registry (see ``check``)."""

    def __init__(self, required: Iterable[JobKind] = ()) -> None:
        self._handlers: dict[str, Handler] = {}
        self._periodic: dict[str, PeriodicTask] = {}
        self.required = frozenset(required)

    def add(self, kind: JobKind | str, handler: Handler) -> None:
        """Register ``handler`` for ``kind``. A plain name declares the kind (a kind with a
        handler is a known kind); product code passes its ``JobKind`` constant."""
        name = kind.name if isinstance(kind, JobKind) else JobKind(kind).name
        current = self._handlers.get(name)
        if current is not None and current is not handler:
            raise ValueError(f"a handler is already registered for {name!r}")
        self._handlers[name] = handler

    def register(self, kind: JobKind | str) -> Callable[[H], H]:
        """Decorator: ``@register(KIND)`` on ``async def handler(ctx: JobContext)``."""

        def decorate(handler: H) -> H:
            self.add(kind, handler)
            return handler

        return decorate

    def register_periodic(self, name: str, interval_s: float, fn: PeriodicFn) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        current = self._periodic.get(name)
        if current is not None and current.fn is not fn:
            raise ValueError(f"a periodic task is already registered as {name!r}")
        self._periodic[name] = PeriodicTask(name, interval_s, fn)

    def handler(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def check(self) -> None:
        """Raise ``MissingHandlers`` when a required kind has no handler: jobs of that kind
        would wait forever, so the worker refuses to start instead."""
        missing = sorted(k.name for k in self.required if k.name not in self._handlers)
        if missing:
            raise MissingHandlers(f"no handler registered for job kinds: {', '.join(missing)}")

    @property
    def periodic_tasks(self) -> list[PeriodicTask]:
        return list(self._periodic.values())


# The process-wide registry that the product's handler modules register into (app.tasks).
registry = Registry(required=PRODUCT_KINDS)
register = registry.register
register_periodic = registry.register_periodic
