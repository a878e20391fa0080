from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field

from app.search.service import Hit

SNIPPET_HELP = (
    "The matched text (a long one cut to its best stretch, with `…` where it is cut) as an "
    "HTML fragment that is safe to insert: every character of the text is escaped (`&`, `<`, "
    "`>`, `\"`, `'` as `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#x27;`) and the only tags are "
    "`<mark>` and `</mark>` around the words that matched (consecutive words in one "
    "element). A native client splits on the two tags and unescapes those five entities."
)


class SearchHitOut(BaseModel):
    kind: Literal["transcript", "feedback"] = Field(
        description="`transcript`: a segment of the clip's transcript; `feedback`: a "
        "feedback item (thread or reply) on the clip."
    )
    clip_id: uuid.UUID
    clip_title: str
    stage: str
    timestamp_ms: int = Field(
        description="Where to play: the segment's start, or the feedback's position."
    )
    end_ms: int | None = Field(
        description="The segment's end, or the end of the feedback's range (null without)."
    )
    snippet: str = Field(description=SNIPPET_HELP)
    feedback_id: uuid.UUID | None = Field(description="Feedback hits only (null otherwise).")
    score: float = Field(
        description="Relevance, higher is better; compare within one list only (the scale "
        "depends on the database)."
    )

    @classmethod
    def of(cls, hit: Hit) -> SearchHitOut:
        return cls(
            kind=hit.kind.value,
            clip_id=hit.clip_id,
            clip_title=hit.clip_title,
            stage=hit.stage,
            timestamp_ms=hit.timestamp_ms,
            end_ms=hit.end_ms,
            snippet=hit.snippet,
            feedback_id=hit.feedback_id,
            score=hit.score,
        )
