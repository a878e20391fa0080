from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import PrincipalDep, SessionDep
from app.openapi_meta import errors
from app.pagination import MAX_LIMIT, Page, PageParams
from app.search import service
from app.search.schemas import SearchHitOut

router = APIRouter(tags=["search"])

DEFAULT_LIMIT = 20

DESCRIPTION = """\
Transcript segments and feedback (threads and replies) of the clips the caller may see,
most relevant first (equal scores: by clip, then in playback order).

`q` matches whole words, ignoring case and accents ("Élan" finds "elan"); every word must
occur, in any order; text in double quotes must occur as a phrase. Punctuation separates
words and nothing is an operator (`or`, `-`, `*` are plain text). No stemming: "price" does
not find "pricing". A `q` without any letter or digit answers 422.

A transcript hit points at its segment (`timestamp_ms`, `end_ms`); transcripts come from
speech recognition and may be wrong (see the clip's `confidence_class`). A feedback hit
points at the item (`feedback_id`) and its position on the clip.

The cursor holds the last hit's score: on SQLite, scores shift a little whenever the index
changes, so a page fetched after new feedback may repeat or skip a hit near its edge.
"""


@router.get(
    "/v1/search",
    summary="Search what was said in clips (transcripts) and written about them (feedback)",
    description=DESCRIPTION,
    response_model=Page[SearchHitOut],
    responses=errors(401, 422, codes={422: ["invalid_cursor", "unknown_stage"]}),
)
async def search_hits(
    session: SessionDep,
    principal: PrincipalDep,
    q: Annotated[
        str, Query(min_length=1, max_length=200, description='Words and "quoted phrases".')
    ],
    stage: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Only clips of this stage.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..100).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="Opaque cursor from `next_cursor`.")
    ] = None,
) -> Page[SearchHitOut]:
    hits, next_cursor = await service.search(
        session, principal, q, stage, PageParams(limit=limit, cursor=cursor)
    )
    return Page[SearchHitOut](items=[SearchHitOut.of(h) for h in hits], next_cursor=next_cursor)
