from __future__ import annotations

import logging

from app.exemplars.service import refresh_scores
from app.jobs.registry import TaskContext

log = logging.getLogger("peerpitch.exemplars")

REFRESH_INTERVAL_S = 60


async def refresh_exemplar_scores(ctx: TaskContext) -> None:
    """Periodic: fold new views and helpful marks into every exemplar's score. Idempotent
    (a recomputation from the source rows), so overlapping runs in several workers are fine."""
    async with ctx.sessionmaker.begin() as session:
        count = await refresh_scores(session)
    log.debug("refreshed %d exemplar scores", count)
