"""Job kinds: one typed constant per kind, shared by the code that enqueues a job and the
handler that runs it, so nothing links them by a bare string.

A kind must be declared before it can be enqueued (``enqueue`` refuses an unknown one at
once, in the caller's request, instead of leaving a job no worker will ever claim), and the
product's worker refuses to start while one of ``PRODUCT_KINDS`` has no handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

MAX_KIND_LENGTH = 64


class UnknownJobKind(ValueError):
    """A job kind that was never declared: a typo, or code that forgot to declare it."""


@dataclass(frozen=True, slots=True)
class JobKind:
    """A declared job kind; ``name`` is what the jobs table stores."""

    name: str

    _declared: ClassVar[dict[str, JobKind]] = {}

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > MAX_KIND_LENGTH:
            raise ValueError(f"job kind must have 1 to {MAX_KIND_LENGTH} characters: {self.name!r}")
        JobKind._declared.setdefault(self.name, self)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def of(cls, kind: JobKind | str) -> JobKind:
        """The declared kind for ``kind``; raises ``UnknownJobKind`` for an undeclared name."""
        if isinstance(kind, JobKind):
            return kind
        declared = cls._declared.get(kind)
        if declared is None:
            raise UnknownJobKind(f"unknown job kind {kind!r}: declare it as a JobKind first")
        return declared


# The product's kinds. Payloads are JSON objects; each handler documents its own.
TRANSCODE_CLIP = JobKind("transcode_clip")  # {"clip_id", "org_id"}
PURGE_CLIP = JobKind("purge_clip")  # {"clip_id", "org_id"}
WEBHOOK_DELIVER = JobKind("webhook_deliver")  # {"delivery_id", "org_id"}: one attempt
ANALYZE_SPEECH = JobKind("analyze_speech")  # {"clip_id", "org_id", "force"?}: once ready
REMATCH_TALK_TRACK = JobKind("rematch_talk_track")  # {"org_id", "stage"}: after an edit

PRODUCT_KINDS: frozenset[JobKind] = frozenset(
    {TRANSCODE_CLIP, PURGE_CLIP, WEBHOOK_DELIVER, ANALYZE_SPEECH, REMATCH_TALK_TRACK}
)
