"""The one way a test waits for something it cannot await: ``eventually()``.

Prefer awaiting a real event (an ``asyncio.Event`` a handler sets, ``Worker.events``); poll
only what has no event: a database row written by another task, an HTTP resource, another
process or thread.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0
INTERVAL_S = 0.02


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], object] = ...,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...
@overload
async def eventually(
    probe: Callable[[], T],
    *,
    until: Callable[[T], object] = ...,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...
async def eventually(
    probe: Callable[[], Any],
    *,
    until: Callable[[Any], object] = bool,
    timeout: float = DEFAULT_TIMEOUT_S,
    interval: float = INTERVAL_S,
    what: str = "",
) -> Any:
    """Call ``probe`` (sync or async) until ``until(value)`` holds (by default: the value is
    truthy) and return that value. After ``timeout`` seconds, fail with an AssertionError
    naming ``what`` and the last value seen. Exceptions from ``probe`` propagate at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return value
        if loop.time() >= deadline:
            name = what or getattr(probe, "__name__", "<lambda>")
            if name == "<lambda>":
                name = "a condition"
            raise AssertionError(
                f"waited {timeout} s for {name} in vain; last value: {_describe(value)}"
            )
        # The poll interval: what is polled has no event to await (see the docstring).
        await asyncio.sleep(interval)


def eventually_sync(probe: Callable[[], T], **kwargs: Any) -> T:
    """``eventually`` from synchronous code (no running event loop), e.g. a sync fixture."""
    value: T = asyncio.run(eventually(probe, **kwargs))
    return value


def _describe(value: object) -> str:
    """repr(), or the public attributes of an object without one (an ORM row)."""
    if type(value).__repr__ is object.__repr__ and hasattr(value, "__dict__"):
        fields = {k: v for k, v in vars(value).items() if not k.startswith("_")}
        return f"{type(value).__name__}({fields})"
    return repr(value)
