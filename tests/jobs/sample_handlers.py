"""Handlers for the worker-process tests, loaded through PEERPITCH_WORKER_EXTRA_MODULES."""

from __future__ import annotations

import asyncio

from workers.registry import JobContext, register


@register("test.sleep")
async def sleep(ctx: JobContext) -> None:
    await asyncio.sleep(float(ctx.payload["seconds"]))
