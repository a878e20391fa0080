from __future__ import annotations

import logging

from app.events.service import purge_expired
from app.jobs.registry import TaskContext

log = logging.getLogger("peerpitch.events")


async def purge_expired_events(ctx: TaskContext) -> None:
    """Periodic: drop events older than PEERPITCH_EVENT_RETENTION_DAYS (one DELETE)."""
    async with ctx.sessionmaker.begin() as session:
        purged = await purge_expired(session, ctx.settings.event_retention_days)
    if purged:
        log.info("dropped %d events past their retention", purged)
