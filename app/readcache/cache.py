"""Answers of expensive reads kept per process and served only while still current.

Every answer is stored with the organization's read version (``read_versions``, moved on by
triggers whenever a transaction that changed one of ``WATCHED_TABLES`` commits) as it was
read *before* the answer was computed, and served again only to a request that reads the
same version: so an answer is never older than what a request made without the cache would
show. Written by any process, the version is read from the database by every request (with
the caller's row, in the same statement: ``app.auth.caller``), so every API process sees a
change on its next request; nothing here is invalidated in memory alone.

An answer computed while a write committed is stored under the older version and so never
served again once that version has moved on; it may be *newer* than its version, which
only costs a recomputation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

# The tables the cached reads (the feedback page, the prep kit) show rows of, directly or
# through visibility (clips, review requests) and names (users). The migration that installs
# the triggers lists them too (a test checks both agree).
WATCHED_TABLES = (
    "users",
    "clips",
    "review_requests",
    "feedback",
    "feedback_reactions",
    "stages",
    "skills",
    "exemplars",
    "clip_speech",
)

V = TypeVar("V")


class ReadCache(Generic[V]):
    """A bounded LRU map of key → (read version, answer)."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[Hashable, tuple[int, V]] = OrderedDict()

    def get(self, key: Hashable, version: int) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] != version:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: Hashable, version: int, value: V) -> None:
        if self._max <= 0:
            return
        self._entries[key] = (version, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
