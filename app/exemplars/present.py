"""An exemplar as the API shows it: for responses (with a signed poster) and for events
(without one: signed URLs expire)."""

from __future__ import annotations

from app.exemplars.models import Exemplar
from app.exemplars.schemas import ExemplarClip, ExemplarOut
from app.users.schemas import PersonOut


def exemplar_view(exemplar: Exemplar, poster_url: str | None) -> ExemplarOut:
    """``exemplar.clip`` and its owner must be loaded."""
    clip = exemplar.clip
    return ExemplarOut(
        clip=ExemplarClip(
            id=clip.id,
            title=clip.title,
            owner=PersonOut.model_validate(clip.owner),
            stage=clip.stage,
            skills=list(clip.skills),
            duration_ms=clip.duration_ms,
            poster_url=poster_url,
        ),
        note=exemplar.note,
        score=exemplar.score,
        view_count=exemplar.viewer_count,
        completion_rate=exemplar.completion_rate,
        helpful_count=exemplar.helpful_count,
        endorsed=exemplar.endorsed,
        marked_at=exemplar.marked_at,
    )
