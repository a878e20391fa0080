"""What a Worker reports while it runs, for whoever waits on it (tests, benchmarks).

Four events: ``Claimed`` (a job's handler started), ``Idle`` (nothing to claim: the loop
sleeps until woken or its poll interval passes), ``Finished`` (an attempt ended, and what
was recorded for it) and ``Draining`` (the claim loop ended). Nobody listening costs one
length check per event: the event object is only built when a waiter exists.

Waiters live in the worker's event loop. Register with ``expect`` *before* causing what
you wait for (an enqueue, starting the worker), then await the future; ``wait_for`` does
both when the event cannot have happened yet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, ParamSpec, TypeVar

# succeeded: completed · retrying: the attempt failed, queued again after a backoff ·
# failed: failed permanently · dead: the last attempt failed · released: handed back
# unfinished at shutdown, the attempt not counted · lease-lost: nothing recorded, another
# worker owns the job (or the outcome could not be written; the lease then runs out).
Outcome = Literal["succeeded", "retrying", "failed", "dead", "released", "lease-lost"]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job was claimed and its handler started."""

    job_id: uuid.UUID
    kind: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Idle:
    """A claim found nothing to do (or no kinds are registered) and no wake-up is pending:
    the loop now sleeps until woken or its poll interval passes. ``running`` jobs go on."""

    running: int


@dataclass(frozen=True, slots=True)
class Finished:
    """A claimed attempt's supervisor ended; ``outcome`` is what was recorded for it.
    Exactly one per ``Claimed``."""

    job_id: uuid.UUID
    kind: str
    attempt: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Draining:
    """The claim loop ended (stop or cancel): nothing more is claimed; the ``running``
    jobs get the grace period."""

    running: int


WorkerEvent = Claimed | Idle | Finished | Draining
E = TypeVar("E", Claimed, Idle, Finished, Draining)
P = ParamSpec("P")


class WorkerEvents:
    """One-shot waiters on a worker's events."""

    def __init__(self) -> None:
        self._waiters: list[tuple[Callable[[WorkerEvent], bool], asyncio.Future[WorkerEvent]]] = []

    def expect(
        self, kind: type[E], predicate: Callable[[E], bool] | None = None
    ) -> asyncio.Future[E]:
        """A future for the next event of ``kind`` (matching ``predicate``) emitted from
        now on. The predicate runs in the worker, at the event; should it raise, the
        future gets the exception and the worker goes on."""

        def matches(event: WorkerEvent) -> bool:
            return isinstance(event, kind) and (predicate is None or predicate(event))

        future: asyncio.Future[E] = asyncio.get_running_loop().create_future()
        self._waiters.append((matches, future))  # type: ignore[arg-type]
        return future

    async def wait_for(
        self, kind: type[E], predicate: Callable[[E], bool] | None = None, *, timeout_s: float
    ) -> E:
        """``expect`` and await it; TimeoutError after ``timeout_s`` seconds."""
        future = self.expect(kind, predicate)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no {kind.__name__} event within {timeout_s} s") from None

    def emit(self, make: Callable[P, WorkerEvent], *args: P.args, **kwargs: P.kwargs) -> None:
        """Build the event (only when someone waits) and resolve the waiters it matches."""
        if not self._waiters:
            return
        event = make(*args, **kwargs)
        kept = []
        for matches, future in self._waiters:
            if future.done():  # timed out or cancelled
                continue
            try:
                hit = matches(event)
            except Exception as exc:
                future.set_exception(exc)
                continue
            if hit:
                future.set_result(event)
            else:
                kept.append((matches, future))
        self._waiters = kept
