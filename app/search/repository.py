"""The search index of one organization: its writes, and the one statement of a search page.

Matching and ranking are each database's own full-text search over ``terms`` (see
app.search.models for the indexes and app.search.text for what ``terms`` holds):

- PostgreSQL: ``to_tsvector('simple', terms) @@ websearch_to_tsquery('simple', :q)`` (the
  expression of the GIN index), ranked by ``ts_rank(..., 1)`` (how often the query's words
  occur, divided by 1 + log of the document's length: no statistics of other documents);
- SQLite: ``search_fts MATCH :q`` on the FTS5 table, ranked by ``-bm25(search_fts)`` (its
  word weights come from the whole table, every organization's rows included).

Either way a higher score is more relevant; the two scales differ.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.clips.access import visible_to
from app.clips.models import Clip
from app.db import uuid7
from app.pagination import PageParams, SortKey, decode_page_cursor
from app.search.models import FTS_TABLE, DocumentKind, SearchDocument
from app.tenancy import Principal, TenantRepository

# Relevance first; equal scores by clip, then in playback order; the id makes it total.
ORDER = (
    SortKey(SearchDocument.score, descending=True),
    SortKey(SearchDocument.clip_id),
    SortKey(SearchDocument.timestamp_ms),
    SortKey(SearchDocument.id),
)

# PostgreSQL: the text search configuration, written as the index's expression is (a bind
# parameter would keep the planner from using the index).
_SIMPLE: ColumnElement[Any] = literal_column("'simple'::regconfig")
# SQLite: the FTS5 table, joined to the documents by rowid.
_FTS = table(FTS_TABLE, column("rowid", Integer))
_DOCUMENT_ROWID: ColumnElement[int] = literal_column("search_documents.rowid", Integer)


def _match_and_score(dialect: str) -> tuple[ColumnElement[bool], ColumnElement[float]]:
    """The full-text condition and the relevance of a row, for the bind parameter ``q``
    (app.search.text.Query.expression)."""
    q: BindParameter[str] = bindparam("q", type_=String)
    if dialect == "postgresql":
        vector = func.to_tsvector(_SIMPLE, SearchDocument.terms)
        query = func.websearch_to_tsquery(_SIMPLE, q)
        return vector.bool_op("@@")(query), func.ts_rank(vector, query, 1, type_=Float)
    fts: ColumnElement[Any] = literal_column(FTS_TABLE)
    return fts.bool_op("MATCH")(q), -func.bm25(fts, type_=Float)


def _after(score: ColumnElement[float], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows after the cursor's position in ORDER (the score by its expression)."""
    columns: list[Any] = [score, *(key.column for key in ORDER[1:])]
    clauses = []
    for i, key in enumerate(ORDER):
        step = columns[i] < values[i] if key.descending else columns[i] > values[i]
        clauses.append(and_(*(columns[j] == values[j] for j in range(i)), step))
    return or_(*clauses)


class SearchRepository(TenantRepository[SearchDocument]):
    model = SearchDocument

    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # --- writes ---

    async def put_feedback(
        self,
        *,
        feedback_id: uuid.UUID,
        clip_id: uuid.UUID,
        thread_id: uuid.UUID,
        timestamp_ms: int,
        end_ms: int | None,
        body: str,
        terms: str,
    ) -> None:
        """Index a feedback item, or replace its row (one statement)."""
        upsert = pg_insert if self._dialect() == "postgresql" else sqlite_insert
        values = {
            "clip_id": clip_id,
            "thread_id": thread_id,
            "timestamp_ms": timestamp_ms,
            "end_ms": end_ms,
            "body": body,
            "terms": terms,
        }
        stmt = upsert(SearchDocument).values(
            id=uuid7(),
            org_id=self.org_id,
            kind=DocumentKind.feedback,
            feedback_id=feedback_id,
            **values,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[SearchDocument.feedback_id],
            set_={name: stmt.excluded[name] for name in values},
        )
        await self.session.execute(stmt)

    async def remove_feedback(self, feedback_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(SearchDocument)
            .where(self.where_in_org(), SearchDocument.feedback_id == feedback_id)
            .execution_options(synchronize_session=False)
        )

    async def move_thread(
        self, thread_id: uuid.UUID, timestamp_ms: int, end_ms: int | None
    ) -> None:
        """A thread's rows (its root and replies) take its new position."""
        await self.session.execute(
            update(SearchDocument)
            .where(self.where_in_org(), SearchDocument.thread_id == thread_id)
            .values(timestamp_ms=timestamp_ms, end_ms=end_ms)
            .execution_options(synchronize_session=False)
        )

    async def replace_transcript(
        self,
        clip_id: uuid.UUID,
        media_version: str | None,
        segments: Sequence[tuple[int, int, str, str]],
    ) -> None:
        """The clip's transcript rows become ``segments`` (start_ms, end_ms, body, terms):
        one delete and one multi-row insert."""
        await self.session.execute(
            delete(SearchDocument)
            .where(
                self.where_in_org(),
                SearchDocument.clip_id == clip_id,
                SearchDocument.kind == DocumentKind.transcript,
            )
            .execution_options(synchronize_session=False)
        )
        if not segments:
            return
        rows = [
            {
                "id": uuid7(),
                "org_id": self.org_id,
                "clip_id": clip_id,
                "kind": DocumentKind.transcript,
                "media_version": media_version,
                "timestamp_ms": start_ms,
                "end_ms": end_ms,
                "body": body,
                "terms": terms,
            }
            for start_ms, end_ms, body, terms in segments
        ]
        # Core executemany: no ORM objects for what nobody reads back.
        await self.session.execute(insert(SearchDocument), rows)

    # --- reads ---

    async def search_page(
        self,
        principal: Principal,
        expression: str,
        stage: str | None,
        page: PageParams,
    ) -> list[Any]:
        """One page of hits (and one more row, if there is one) in ORDER: documents of live
        clips the caller may see (app.clips.access), of the current media version for
        transcript rows. One statement; each row has the ORDER keys and what a hit shows."""
        dialect = self._dialect()
        matches, score = _match_and_score(dialect)
        ranked = score.label("score")
        stmt = select(
            SearchDocument.id,
            SearchDocument.kind,
            SearchDocument.clip_id,
            Clip.title.label("clip_title"),
            Clip.stage,
            SearchDocument.timestamp_ms,
            SearchDocument.end_ms,
            SearchDocument.feedback_id,
            SearchDocument.body,
            ranked,
        )
        if dialect != "postgresql":
            stmt = stmt.select_from(_FTS).join(SearchDocument, _FTS.c.rowid == _DOCUMENT_ROWID)
        stmt = stmt.join(Clip, Clip.id == SearchDocument.clip_id).where(
            self.where_in_org(Clip),
            visible_to(principal),
            matches,
            or_(
                SearchDocument.media_version.is_(None),
                SearchDocument.media_version == Clip.media["version"].as_string(),
            ),
        )
        if stage is not None:
            stmt = stmt.where(Clip.stage == stage)
        if page.cursor:
            stmt = stmt.where(_after(score, decode_page_cursor(page.cursor, ORDER)))
        stmt = stmt.order_by(ranked.desc(), *(key.column.asc() for key in ORDER[1:]))
        stmt = stmt.limit(page.limit + 1)
        result = await self.session.execute(stmt, {"q": expression})
        return list(result.all())
