"""Stored speech analyses of one organization's clips."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import undefer

from app.clips.models import Clip, ClipKind, ClipStatus
from app.db import utcnow, uuid7
from app.speech_analysis.models import ClipSpeech, SpeechStatus
from app.tenancy import TenantRepository


class DeliveryRow(NamedTuple):
    """A clip's delivery figures from its current, ready analysis (what the skill profile and
    the prep kit compare), read from the stored result's JSON by the database."""

    clip_id: uuid.UUID
    stage: str
    title: str
    recorded_at: datetime  # the clip's creation
    analyzed_at: datetime
    confidence_class: str | None  # the transcript's; None without one
    words_per_minute: float | None  # None without a transcript
    fillers_per_minute: float | None
    pause_count: int | None
    longest_pause_ms: int | None
    speaking_ratio: float | None


def _figure(*path: str) -> ColumnElement[Any]:
    return ClipSpeech.result[("metrics", *path)]


# The columns of a DeliveryRow, in order: JSON paths the SQLAlchemy JSON type renders for
# both databases (SQLite's JSON_EXTRACT, PostgreSQL's #>>); a JSON null reads as NULL.
_DELIVERY_COLUMNS = (
    ClipSpeech.clip_id,
    Clip.stage,
    Clip.title,
    Clip.created_at,
    ClipSpeech.analyzed_at,
    ClipSpeech.confidence_class,
    _figure("transcript", "words_per_minute").as_float(),
    _figure("transcript", "fillers_per_minute").as_float(),
    _figure("delivery", "pause_count").as_integer(),
    _figure("delivery", "longest_pause_ms").as_integer(),
    _figure("delivery", "speaking_ratio").as_float(),
)


class SpeechRepository(TenantRepository[ClipSpeech]):
    model = ClipSpeech

    async def of_clip(
        self, clip_id: uuid.UUID, *, with_transcript: bool = False, fresh: bool = False
    ) -> ClipSpeech | None:
        """The clip's stored analysis; ``fresh`` reads it again after a write."""
        stmt = self.select().where(ClipSpeech.clip_id == clip_id)
        if with_transcript:
            stmt = stmt.options(undefer(ClipSpeech.transcript))
        if fresh:
            stmt = stmt.execution_options(populate_existing=True)
        found: ClipSpeech | None = (await self.session.scalars(stmt)).one_or_none()
        return found

    async def analysed_version(self, clip_id: uuid.UUID) -> str | None:
        """The media version the clip's stored analysis was computed from."""
        version: str | None = await self.session.scalar(
            self.select(ClipSpeech.media_version).where(ClipSpeech.clip_id == clip_id)
        )
        return version

    async def save(self, clip_id: uuid.UUID, values: dict[str, Any]) -> None:
        """Insert the clip's analysis or replace the one stored (one statement, so a retried
        job racing a newer one never leaves two rows)."""
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        now = utcnow()
        stmt = insert(ClipSpeech).values(
            id=uuid7(),
            org_id=self.org_id,
            clip_id=clip_id,
            created_at=now,
            updated_at=now,
            **values,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[ClipSpeech.clip_id],
            set_={**{name: stmt.excluded[name] for name in values}, "updated_at": now},
        )
        await self.session.execute(stmt)

    # --- delivery figures ---------------------------------------------------------------------

    def _current_ready(self, *columns: Any) -> Select[Any]:
        """Ready analyses of the media version their clip plays now (a stale or failed
        analysis, or one with nothing to analyse, has no figures to show), of live clips."""
        return (
            self.select(*columns)
            .join(Clip, Clip.id == ClipSpeech.clip_id)
            .where(
                self.scoped(Clip),
                ClipSpeech.status == SpeechStatus.ready,
                ClipSpeech.media_version == Clip.media["version"].as_string(),
                Clip.status == ClipStatus.ready,
                Clip.deleted_at.is_(None),
            )
        )

    async def pitch_deliveries(self, owner_id: uuid.UUID) -> list[DeliveryRow]:
        """The owner's analysed pitches of every stage, oldest first: one statement."""
        rows = await self.session.execute(
            self._current_ready(*_DELIVERY_COLUMNS)
            .where(Clip.owner_id == owner_id, Clip.kind == ClipKind.pitch)
            .order_by(Clip.created_at, Clip.id)
        )
        return [DeliveryRow._make(row) for row in rows]

    async def stage_deliveries(
        self, stage: str, owner_id: uuid.UUID, exemplar_clip_ids: Select[uuid.UUID]
    ) -> list[tuple[DeliveryRow, bool, bool]]:
        """In one statement, the stage's analysed clips among: the owner's newest analysed
        pitch, and ``exemplar_clip_ids`` (a statement of clip ids); each row with whether it
        is that pitch, and whether it is an exemplar (a pitch may be both)."""
        newest = (
            self._current_ready(ClipSpeech.clip_id)
            .where(Clip.owner_id == owner_id, Clip.kind == ClipKind.pitch, Clip.stage == stage)
            .order_by(Clip.created_at.desc(), Clip.id.desc())
            .limit(1)
            .correlate(None)  # its own clips and analyses, not the outer query's row
            .scalar_subquery()
        )
        is_newest = Clip.id == newest
        is_exemplar = Clip.id.in_(exemplar_clip_ids.correlate(None))
        rows = await self.session.execute(
            self._current_ready(*_DELIVERY_COLUMNS, is_newest, is_exemplar).where(
                Clip.stage == stage, is_newest | is_exemplar
            )
        )
        width = len(_DELIVERY_COLUMNS)
        return [
            (DeliveryRow._make(row[:width]), bool(row[width]), bool(row[width + 1])) for row in rows
        ]
