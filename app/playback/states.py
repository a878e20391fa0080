"""The reads behind every playback token check: a clip's media manifest, status and
deletion time by primary key (each request), and whether the token's viewer may still see
the clip (``ViewerAccess``: cached per process, re-read every ``playback_access_recheck_s``).

The clip's row is read through ``app.hotreads`` (asyncpg directly on PostgreSQL: SQLAlchemy's
async machinery cost several times the query, bench/playback.py measured about 0.15 → 0.36
of a bare endpoint's throughput; a deferred read transaction on SQLite).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clips.access import viewer_may_see
from app.clips.models import Clip
from app.hotreads import HotReads

_SELECT = select(Clip.media, Clip.status, Clip.deleted_at).where(Clip.id == bindparam("clip_id"))
# Bound parameter, never interpolated.
_PG_SELECT = "SELECT media, status, deleted_at FROM clips WHERE id = $1"


class ClipState(NamedTuple):
    media: dict[str, Any] | None
    status: str
    deleted_at: datetime | None


class ClipStates:
    def __init__(self, reads: HotReads) -> None:
        self._reads = reads
        self.access = ViewerAccess(reads.engine, sqlite=reads.sqlite)

    async def get(self, clip_id: uuid.UUID) -> ClipState | None:
        row = await self._reads.row(_PG_SELECT, (clip_id,), _SELECT, {"clip_id": clip_id})
        if row is None:
            return None
        media = row["media"]
        if isinstance(media, str):  # json columns arrive as text from asyncpg without a codec
            media = json.loads(media)
        return ClipState(media, str(row["status"]), row["deleted_at"])


AccessKey = tuple[uuid.UUID | None, uuid.UUID]  # (viewer, clip); no viewer: an unbound token


class ViewerAccess:
    """Whether a play token's viewer may still see its clip (``app.clips.access``'s rule,
    with the account's state), answered from a bounded per-process cache and read again once
    an answer is ``recheck_s`` old: a player's requests cost a dict lookup, and a clip made
    private, a declined review or a deactivated account ends playback within ``recheck_s``
    (plus one read) on every API process.

    Refusals are cached like grants, so a revoked player that keeps asking costs nothing
    either. Concurrent misses of one key share one read. The age counts from before the
    read, so no answer is served older than ``recheck_s``.
    """

    def __init__(self, engine: AsyncEngine, *, sqlite: bool, max_entries: int = 8192) -> None:
        self._engine = engine
        self._sqlite = sqlite
        self._max = max_entries
        self._answers: OrderedDict[AccessKey, tuple[float, bool]] = OrderedDict()
        self._reading: dict[AccessKey, asyncio.Task[bool]] = {}
        self._generation = 0  # bumped by clear(): reads begun before it store nothing

    async def allows(
        self, viewer_id: uuid.UUID | None, clip_id: uuid.UUID, *, recheck_s: float
    ) -> bool:
        key = (viewer_id, clip_id)
        answer = self._answers.get(key)
        if answer is not None and time.monotonic() - answer[0] < recheck_s:
            return answer[1]
        task = self._reading.get(key)
        if task is None:
            task = asyncio.create_task(self._read(key))
            self._reading[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        # Shielded: a player hanging up does not cancel the read others wait for.
        return await asyncio.shield(task)

    def clear(self) -> None:
        """Forget every answer: the next request of each viewer reads afresh."""
        self._generation += 1
        self._answers.clear()
        self._reading.clear()

    def __len__(self) -> int:
        return len(self._answers)

    async def _read(self, key: AccessKey) -> bool:
        started, generation = time.monotonic(), self._generation
        async with self._engine.connect() as conn:
            if self._sqlite:  # a deferred read transaction: never SQLite's write lock
                conn = await conn.execution_options(sqlite_begin="")
            allowed = await viewer_may_see(conn, *key)
        if generation != self._generation:
            return allowed
        # Re-inserted at the end: the oldest answers go first when the cache is full.
        self._answers.pop(key, None)
        self._answers[key] = (started, allowed)
        if len(self._answers) > self._max:
            self._answers.popitem(last=False)
        return allowed

    def _done(self, key: AccessKey, task: asyncio.Task[bool]) -> None:
        if self._reading.get(key) is task:
            del self._reading[key]
        if not task.cancelled():
            task.exception()  # retrieved: an error reaches the waiting requests, not the log
