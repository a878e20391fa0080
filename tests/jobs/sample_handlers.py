"""Handlers for the worker-process tests, loaded through PEERPITCH_WORKER_EXTRA_MODULES."""

from __future__ import annotations

import asyncio

from app.jobs.registry import JobContext, register


@register("test.sleep")
async def sleep(ctx: JobContext) -> None:
    # A handler that really takes time: the worker process's shutdown is tested against it,
    # and the test (in another process) cannot hand it an event.
    await asyncio.sleep(float(ctx.payload["seconds"]))
