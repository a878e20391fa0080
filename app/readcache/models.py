from __future__ import annotations

import uuid

from sqlalchemy import BigInteger
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ReadVersion(Base):
    """Each organization's read version: moved on by every committed transaction that
    changed a row the cached reads show (see app.readcache.cache for the tables).

    Database triggers keep it, so no write can forget it: on PostgreSQL deferred constraint
    triggers, which run as the writing transaction commits (the row is locked only from
    there to the commit, as ``event_sequences``' is, and always after it, so two writers
    never wait for each other in opposite orders) and move it once per transaction; on
    SQLite row triggers (one writer at a time anyway).

    No foreign key: the triggers also fire on the rows an organization's deletion removes.
    """

    __tablename__ = "read_versions"

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    # PostgreSQL: the transaction id that last moved the version, so it moves once per
    # transaction however many rows it changed.
    xact: Mapped[int | None] = mapped_column(BigInteger)
