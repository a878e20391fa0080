from __future__ import annotations

import logging

from app.auth.throttle import purge_expired
from app.jobs.registry import TaskContext

log = logging.getLogger("peerpitch.auth")

# Failures only count within the window (a minute by default); purging every few minutes
# keeps the table at a few windows' worth of rows, even under a spray of guesses.
PURGE_INTERVAL_S = 300


async def purge_login_failures(ctx: TaskContext) -> None:
    """Periodic: drop failed-login rows past the throttling window (one DELETE, safe to
    overlap)."""
    async with ctx.sessionmaker.begin() as session:
        purged = await purge_expired(session, ctx.settings)
    if purged:
        log.info("dropped %d expired login failures", purged)
