"""search index over transcripts and feedback

- search_documents: one row per searchable text of a clip (a feedback item; a segment of the
  clip's stored transcript), with its words folded as app.search.text does (``terms``).
- PostgreSQL: a GIN index on ``to_tsvector('simple', terms)``.
- SQLite: the FTS5 table ``search_fts`` over ``terms`` (external content: search_documents by
  rowid), kept in step by triggers. A later migration that rebuilds search_documents on
  SQLite (batch mode copies the table) must create the triggers again and rebuild the FTS
  table (``INSERT INTO search_fts(search_fts) VALUES ('rebuild')``).

Existing feedback (live items with words) and stored transcripts are indexed here, so a
deployed database is searchable at once. The folding below is a copy of app.search.text at
this revision (migrations do not import the application).

Revision ID: 28618bf622d1
Revises: daf833ef4db0
Create Date: 2026-12-05 18:31:41.790749
"""

import json
import os
import re
import time
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op


revision: str = '28618bf622d1'
down_revision: str | None = 'daf833ef4db0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('search_documents',
    sa.Column('clip_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.Enum('transcript', 'feedback', name='documentkind', native_enum=False, length=16), nullable=False),
    sa.Column('feedback_id', sa.Uuid(), nullable=True),
    sa.Column('thread_id', sa.Uuid(), nullable=True),
    sa.Column('media_version', sa.String(length=64), nullable=True),
    sa.Column('timestamp_ms', sa.Integer(), nullable=False),
    sa.Column('end_ms', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['clips.id'], name=op.f('fk_search_documents_clip_id_clips'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['feedback_id'], ['feedback.id'], name=op.f('fk_search_documents_feedback_id_feedback'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_search_documents_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_search_documents')),
    sa.UniqueConstraint('feedback_id', name=op.f('uq_search_documents_feedback_id'))
    )
    with op.batch_alter_table('search_documents', schema=None) as batch_op:
        batch_op.create_index('ix_search_documents_clip_kind', ['clip_id', 'kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_search_documents_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_search_documents_thread_id'), ['thread_id'], unique=False)

    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for statement in _SQLITE_FTS:
            op.execute(statement)
    _backfill()
    if not sqlite:
        op.execute(
            "CREATE INDEX ix_search_documents_terms_tsv ON search_documents "
            "USING gin (to_tsvector('simple'::regconfig, terms))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS search_documents_{trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_documents_terms_tsv")
    with op.batch_alter_table('search_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_search_documents_thread_id'))
        batch_op.drop_index(batch_op.f('ix_search_documents_org_id'))
        batch_op.drop_index('ix_search_documents_clip_kind')

    op.drop_table('search_documents')


# --- SQLite: the FTS5 table and the triggers that keep it in step with search_documents -------

_SQLITE_FTS = (
    """
    CREATE VIRTUAL TABLE search_fts USING fts5(
        terms, content='search_documents', content_rowid='rowid',
        tokenize='unicode61 remove_diacritics 0'
    )
    """,
    """
    CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN
        INSERT INTO search_fts (rowid, terms) VALUES (new.rowid, new.terms);
    END
    """,
    """
    CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN
        INSERT INTO search_fts (search_fts, rowid, terms) VALUES ('delete', old.rowid, old.terms);
    END
    """,
    """
    CREATE TRIGGER search_documents_au AFTER UPDATE OF terms ON search_documents BEGIN
        INSERT INTO search_fts (search_fts, rowid, terms) VALUES ('delete', old.rowid, old.terms);
        INSERT INTO search_fts (rowid, terms) VALUES (new.rowid, new.terms);
    END
    """,
)


# --- the backfill ----------------------------------------------------------------------------

# app.search.text at this revision.
_WORD = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_WORD_CHARS = 100


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed.casefold() if ch.isalnum())


def _terms(text: str) -> str:
    found = (_fold(match.group()) for match in _WORD.finditer(unicodedata.normalize("NFC", text)))
    return " ".join(w for w in found if w and len(w) <= _MAX_WORD_CHARS)


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", unicodedata.normalize("NFC", text))


def _uuid7() -> uuid.UUID:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


_BATCH = 1000

_documents = sa.table(
    "search_documents",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("clip_id", sa.Uuid()),
    sa.column("kind", sa.String()),
    sa.column("feedback_id", sa.Uuid()),
    sa.column("thread_id", sa.Uuid()),
    sa.column("media_version", sa.String()),
    sa.column("timestamp_ms", sa.Integer()),
    sa.column("end_ms", sa.Integer()),
    sa.column("body", sa.Text()),
    sa.column("terms", sa.Text()),
)
_feedback = sa.table(
    "feedback",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("clip_id", sa.Uuid()),
    sa.column("parent_id", sa.Uuid()),
    sa.column("body", sa.Text()),
    sa.column("timestamp_ms", sa.Integer()),
    sa.column("end_ms", sa.Integer()),
    sa.column("deleted_at", sa.DateTime(timezone=True)),
)
_speech = sa.table(
    "clip_speech",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("clip_id", sa.Uuid()),
    sa.column("media_version", sa.String()),
    sa.column("transcript", sa.JSON()),
)


def _batches(table: Any, columns: Sequence[Any], *conditions: Any) -> Iterator[Sequence[Any]]:
    """The rows of ``table`` in id order, a batch at a time (no cursor stays open while the
    batch's documents are written)."""
    conn = op.get_bind()
    after = None
    while True:
        stmt = sa.select(table.c.id, *columns).where(*conditions).order_by(table.c.id)
        if after is not None:
            stmt = stmt.where(table.c.id > after)
        rows = conn.execute(stmt.limit(_BATCH)).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _segments(transcript: Any) -> list[dict[str, Any]]:
    if isinstance(transcript, str):  # JSON text, as some drivers return it
        transcript = json.loads(transcript)
    segments = transcript.get("segments") if isinstance(transcript, dict) else None
    return [s for s in segments or () if isinstance(s, dict)]


def _backfill() -> None:
    conn = op.get_bind()
    f = _feedback.c
    for rows in _batches(
        _feedback,
        (f.org_id, f.clip_id, f.parent_id, f.body, f.timestamp_ms, f.end_ms),
        f.deleted_at.is_(None),
    ):
        documents = [
            {
                "id": _uuid7(),
                "org_id": row.org_id,
                "clip_id": row.clip_id,
                "kind": "feedback",
                "feedback_id": row.id,
                "thread_id": row.parent_id or row.id,
                "media_version": None,
                "timestamp_ms": row.timestamp_ms,
                "end_ms": row.end_ms,
                "body": body,
                "terms": terms,
            }
            for row in rows
            if (terms := _terms(body := _clean(row.body)))
        ]
        if documents:
            conn.execute(_documents.insert(), documents)
    s = _speech.c
    for rows in _batches(
        _speech, (s.org_id, s.clip_id, s.media_version, s.transcript), s.transcript.is_not(None)
    ):
        documents = [
            {
                "id": _uuid7(),
                "org_id": row.org_id,
                "clip_id": row.clip_id,
                "kind": "transcript",
                "feedback_id": None,
                "thread_id": None,
                "media_version": row.media_version,
                "timestamp_ms": int(segment["start_ms"]),
                "end_ms": int(segment["end_ms"]),
                "body": body,
                "terms": terms,
            }
            for row in rows
            for segment in _segments(row.transcript)
            if (terms := _terms(body := _clean(str(segment.get("text") or ""))))
        ]
        if documents:
            conn.execute(_documents.insert(), documents)
