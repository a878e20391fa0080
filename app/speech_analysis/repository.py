"""Stored speech analyses of one organization's clips."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import undefer

from app.db import utcnow, uuid7
from app.speech_analysis.models import ClipSpeech
from app.tenancy import TenantRepository


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
