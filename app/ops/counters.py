"""Operators' reconciliation of denormalised counters (``peerpitch reconcile-counters``).

The counters move by atomic ``SET n = n + step`` updates tied to a row really inserted or
deleted, so they should never drift; this recount is the safety net after a manual data fix
or a restore, and what the fault tests compare against. Exemplar counts are not stored by
request handlers: the periodic exemplar stats refresh recomputes them from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.clips.models import Clip
from app.feedback.models import OPEN_ROOT, Feedback, FeedbackReaction
from app.feedback.repository import HELPFUL


@dataclass(frozen=True)
class CounterDrift:
    helpful_count: int
    open_feedback_count: int


def _helpful_recount() -> object:
    return (
        select(func.count())
        .where(FeedbackReaction.feedback_id == Feedback.id, FeedbackReaction.kind == HELPFUL)
        .correlate(Feedback)
        .scalar_subquery()
    )


def _open_recount() -> object:
    return (
        select(func.count())
        .select_from(Feedback)
        .where(Feedback.clip_id == Clip.id, text(OPEN_ROOT))
        .correlate(Clip)
        .scalar_subquery()
    )


async def reconcile_counters(session: AsyncSession, *, fix: bool = True) -> CounterDrift:
    """Rows whose counter differs from a fresh recount (all organizations); set right when
    ``fix``. The caller commits."""
    helpful = _helpful_recount()
    open_ = _open_recount()
    drift_helpful = await session.scalar(
        select(func.count()).select_from(Feedback).where(Feedback.helpful_count != helpful)
    )
    drift_open = await session.scalar(
        select(func.count()).select_from(Clip).where(Clip.open_feedback_count != open_)
    )
    if fix:
        await session.execute(
            update(Feedback)
            .where(Feedback.helpful_count != helpful)
            .values(helpful_count=helpful)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(Clip)
            .where(Clip.open_feedback_count != open_)
            .values(open_feedback_count=open_)
            .execution_options(synchronize_session=False)
        )
    return CounterDrift(helpful_count=drift_helpful or 0, open_feedback_count=drift_open or 0)
