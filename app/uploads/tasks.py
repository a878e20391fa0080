from __future__ import annotations

import logging

from app.idempotency.service import purge_expired
from app.storage.base import Storage
from app.uploads.service import expire_stale_uploads
from workers.registry import TaskContext

log = logging.getLogger("peerpitch.uploads")


async def expire_uploads(ctx: TaskContext) -> None:
    """Periodic: abort uploads past PEERPITCH_UPLOAD_TTL_S and drop old idempotency records."""
    storage: Storage = ctx.services["storage"]
    async with ctx.sessionmaker.begin() as session:
        expired = await expire_stale_uploads(session, storage)
        purged = await purge_expired(session)
    if expired or purged:
        log.info("expired %d uploads, dropped %d idempotency records", expired, purged)
