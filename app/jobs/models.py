from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin, TimestampMixin, utcnow


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    dead = "dead"


UNFINISHED = (JobStatus.queued, JobStatus.running)
# The partial index predicate; ON CONFLICT must repeat it verbatim to infer the index.
UNFINISHED_SQL = "status IN ('queued', 'running')"


class Job(IdMixin, TimestampMixin, Base):
    """One unit of background work.

    ``queued`` → ``running`` (claimed, holds a lease) → ``succeeded``; a failure goes back
    to ``queued`` with a later ``run_at`` until ``max_attempts``, then ``dead``; an error
    that retrying cannot fix goes to ``failed`` at once.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        # Claim order within a status: a claim reads queued jobs in this order and stops
        # after its limit, instead of sorting the whole backlog (run_at is filtered here).
        Index("ix_jobs_claim", "status", "priority", "run_at"),
        # At most one unfinished job per dedupe key; finished ones may repeat it.
        Index(
            "uq_jobs_dedupe_key_unfinished",
            "dedupe_key",
            unique=True,
            sqlite_where=text(UNFINISHED_SQL),
            postgresql_where=text(UNFINISHED_SQL),
        ),
    )

    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=20, validate_strings=True),
        default=JobStatus.queued,
    )
    # Lower runs first.
    priority: Mapped[int] = mapped_column(default=100)
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Counted when claimed, so a job that kills its worker still runs out of attempts.
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=5)
    lease_expires_at: Mapped[datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(200))
    progress: Mapped[float] = mapped_column(default=0.0)
    last_error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    finished_at: Mapped[datetime | None]
