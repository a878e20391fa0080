"""Full-text search over what is said in clips (transcript segments) and written about them
(feedback), for a caller who may see the clips; and the index behind it, which the texts'
owners keep current through the functions below, in their own transactions:

- app.feedback.service: ``index_feedback`` when an item is written or edited,
  ``move_thread`` when a thread moves, ``unindex_feedback`` when an item is deleted;
- app.speech_analysis.service: ``index_transcript`` whenever an analysis is stored (a result
  without a transcript clears the clip's transcript rows).

A deleted clip's rows stay until its purge removes them (foreign keys), but are never found:
the search sees only what ``app.clips.access.visible_to`` lets the caller see.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Unprocessable
from app.pagination import PageParams, cut_page
from app.search.models import DocumentKind
from app.search.repository import ORDER, SearchRepository
from app.search.text import clean, parse_query, snippet, terms
from app.speech import Transcript
from app.stages.repository import StageRepository
from app.tenancy import Principal

# --- the index, kept by the owners of the texts --------------------------------------------


async def index_feedback(
    session: AsyncSession,
    *,
    org_id: uuid.UUID,
    feedback_id: uuid.UUID,
    clip_id: uuid.UUID,
    thread_id: uuid.UUID,
    timestamp_ms: int,
    end_ms: int | None,
    body: str,
) -> None:
    """A feedback item as it now reads (new or edited); ``thread_id`` is its thread's root
    (the item's own id for a root). A body without words leaves nothing to find."""
    repo = SearchRepository(session, org_id)
    shown = clean(body)
    words = terms(shown)
    if not words:
        await repo.remove_feedback(feedback_id)
        return
    await repo.put_feedback(
        feedback_id=feedback_id,
        clip_id=clip_id,
        thread_id=thread_id,
        timestamp_ms=timestamp_ms,
        end_ms=end_ms,
        body=shown,
        terms=words,
    )


async def move_thread(
    session: AsyncSession,
    org_id: uuid.UUID,
    thread_id: uuid.UUID,
    timestamp_ms: int,
    end_ms: int | None,
) -> None:
    """A thread (its root and every reply) now sits at this position."""
    await SearchRepository(session, org_id).move_thread(thread_id, timestamp_ms, end_ms)


async def unindex_feedback(
    session: AsyncSession, org_id: uuid.UUID, feedback_id: uuid.UUID
) -> None:
    """A deleted (or tombstoned) feedback item is no longer found."""
    await SearchRepository(session, org_id).remove_feedback(feedback_id)


async def index_transcript(
    session: AsyncSession,
    org_id: uuid.UUID,
    clip_id: uuid.UUID,
    media_version: str | None,
    transcript: Transcript | None,
) -> None:
    """The clip's stored analysis now has this transcript (of that media version) or none:
    its segments replace the clip's previous transcript rows."""
    texts = [
        (segment.start_ms, segment.end_ms, clean(segment.text))
        for segment in (transcript.segments if transcript is not None else ())
    ]
    segments = [(start, end, text, words) for start, end, text in texts if (words := terms(text))]
    await SearchRepository(session, org_id).replace_transcript(clip_id, media_version, segments)


# --- searching ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    kind: DocumentKind
    clip_id: uuid.UUID
    clip_title: str
    stage: str
    timestamp_ms: int
    end_ms: int | None
    snippet: str
    feedback_id: uuid.UUID | None
    score: float


def _invalid_query() -> Unprocessable:
    message = "q must contain at least one word (letters or digits)."
    return Unprocessable(message, details=[{"loc": ["query", "q"], "msg": message}])


async def search(
    session: AsyncSession,
    principal: Principal,
    q: str,
    stage: str | None,
    page: PageParams,
) -> tuple[list[Hit], str | None]:
    """One page of hits, most relevant first, and the cursor of the next. One statement;
    when the page is empty and a stage was given, a second one tells an unknown stage
    (422 ``unknown_stage``) from a stage without hits."""
    query = parse_query(q)
    if not query.parts:
        raise _invalid_query()
    rows = await SearchRepository.of(session, principal).search_page(
        principal, query.expression, stage, page
    )
    if (
        not rows
        and stage is not None
        and not await StageRepository.of(session, principal).key_exists(stage)
    ):
        raise Unprocessable(
            f"Unknown stage {stage!r}.",
            code="unknown_stage",
            details=[{"loc": ["query", "stage"], "msg": "not a stage of this organization"}],
        )
    kept, cursor = cut_page(rows, ORDER, page)
    hits = [
        Hit(
            kind=DocumentKind(row.kind),
            clip_id=row.clip_id,
            clip_title=row.clip_title,
            stage=row.stage,
            timestamp_ms=row.timestamp_ms,
            end_ms=row.end_ms,
            snippet=snippet(row.body, query),
            feedback_id=row.feedback_id,
            score=float(row.score),
        )
        for row in kept
    ]
    return hits, cursor
