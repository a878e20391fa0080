from __future__ import annotations

import logging

from app.idempotency.service import purge_expired
from app.jobs.registry import TaskContext

log = logging.getLogger("peerpitch.idempotency")


async def purge_idempotency_records(ctx: TaskContext) -> None:
    """Periodic: drop idempotency records past their retention (one DELETE, safe to overlap)."""
    async with ctx.sessionmaker.begin() as session:
        purged = await purge_expired(session)
    if purged:
        log.info("dropped %d idempotency records", purged)
