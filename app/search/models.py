"""The search index: one row per searchable text of a clip, kept by the texts' owners through
app.search.service (feedback as it is written, edited and deleted; a transcript's segments
when an analysis is stored).

The full-text index over ``terms`` is created by the migration, per database, and is not
part of this metadata (alembic/env.py leaves it out of comparisons):

- PostgreSQL: the GIN index ``ix_search_documents_terms_tsv`` on
  ``to_tsvector('simple', terms)``, the very expression the search query matches with;
- SQLite: the FTS5 table ``search_fts`` (external content: this table, by rowid; its own
  tokenizer ``unicode61 remove_diacritics 0``), kept in step by the triggers
  ``search_documents_ai|ad|au`` on every insert, delete and change of ``terms``.
"""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import Enum, Float, ForeignKey, Index, String, Text, literal
from sqlalchemy.orm import Mapped, mapped_column, query_expression

from app.db import Base, TenantMixin

# Names of what the migration creates outside the metadata (alembic/env.py skips them).
PG_TEXT_INDEX = "ix_search_documents_terms_tsv"
FTS_TABLE = "search_fts"


class DocumentKind(enum.StrEnum):
    transcript = "transcript"  # one segment of a clip's transcript
    feedback = "feedback"  # one feedback item (a thread or a reply)


class SearchDocument(TenantMixin, Base):
    __tablename__ = "search_documents"
    __label__ = "Search document"
    __table_args__ = (
        # A clip's transcript rows, replaced together when a new analysis is stored.
        Index("ix_search_documents_clip_kind", "clip_id", "kind"),
    )

    clip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"))
    kind: Mapped[DocumentKind] = mapped_column(
        Enum(DocumentKind, native_enum=False, length=16, validate_strings=True)
    )
    # Feedback rows: the item (its deletion removes the row too) and its thread (the root's
    # id), whose position all of the thread's rows share.
    feedback_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("feedback.id", ondelete="CASCADE"), unique=True
    )
    thread_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    # Transcript rows: the media version the transcript was made from (clips.media
    # ["version"]); rows of a version the clip no longer plays are not found.
    media_version: Mapped[str | None] = mapped_column(String(64))
    timestamp_ms: Mapped[int]
    end_ms: Mapped[int | None]
    # The text as written (snippets are cut from it) and its searchable words
    # (app.search.text.terms): what the full-text index covers.
    body: Mapped[str] = mapped_column(Text)
    terms: Mapped[str] = mapped_column(Text)

    # A hit's relevance, computed by the search query (not stored): mapped so that the
    # list's keyset cursor (app.pagination) names and types it like a column.
    score: Mapped[float] = query_expression(literal(0.0, Float))
