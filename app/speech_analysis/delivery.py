"""Delivery figures over many analyses: a rep's trends per stage (the skill profile) and
their newest pitch next to the median of the stage's exemplars (the prep kit).

Only an analysis that counts is read: ``ready``, of the media version the clip plays now,
of a live clip (SpeechRepository's ``_current_ready``). The figures come from the database in
one statement per view; means, medians and directions are computed here, in Python.
"""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from app.speech.models import ConfidenceClass
from app.speech_analysis.repository import DeliveryRow, SpeechRepository
from app.speech_analysis.schemas import (
    DeliveryMedian,
    DeliveryPoint,
    DeliveryTrend,
    DeliveryTrends,
    PrepDelivery,
    StageDelivery,
)
from app.tenancy import Principal
from app.trends import direction

# A trend compares the mean of the newest RECENT values with the mean of the RECENT before.
RECENT = 3
# The newest points of a stage the profile lists.
POINTS = 20
# The smallest change of each figure's recent mean that is a direction, not "steady".
THRESHOLDS: dict[str, float] = {
    "words_per_minute": 10.0,
    "fillers_per_minute": 1.0,
    "pause_count": 1.0,
    "longest_pause_ms": 500.0,
    "speaking_ratio": 0.05,
}
FIGURES = tuple(THRESHOLDS)


def _round(value: float) -> float:
    return round(value, 2)


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are known (the mean of the middle two for an even
    count); None when none is."""
    known = [v for v in values if v is not None]
    return _round(statistics.median(known)) if known else None


def trend(values: Sequence[float | None], threshold: float) -> DeliveryTrend:
    """A figure's trend over values oldest first (unknown values are skipped): the newest,
    the mean of the newest ``RECENT`` and of the ``RECENT`` before them, and the change
    between those two means named by :func:`app.trends.direction`."""
    known = [v for v in values if v is not None]
    recent, previous = known[-RECENT:], known[-2 * RECENT : -RECENT]
    recent_mean = _round(statistics.fmean(recent)) if recent else None
    previous_mean = _round(statistics.fmean(previous)) if previous else None
    change = (
        _round(recent_mean - previous_mean)
        if recent_mean is not None and previous_mean is not None
        else None
    )
    return DeliveryTrend(
        latest=known[-1] if known else None,
        recent_mean=recent_mean,
        previous_mean=previous_mean,
        change=change,
        direction=direction(change, threshold, up="rising", down="falling"),
    )


def _point(row: DeliveryRow) -> DeliveryPoint | None:
    if row.pause_count is None or row.longest_pause_ms is None or row.speaking_ratio is None:
        return None  # a ready result always has delivery metrics; never fail a view on one
    return DeliveryPoint(
        clip_id=row.clip_id,
        title=row.title,
        recorded_at=row.recorded_at,
        analyzed_at=row.analyzed_at,
        confidence_class=cast(ConfidenceClass | None, row.confidence_class),
        words_per_minute=row.words_per_minute,
        fillers_per_minute=row.fillers_per_minute,
        pause_count=row.pause_count,
        longest_pause_ms=row.longest_pause_ms,
        speaking_ratio=row.speaking_ratio,
    )


def stage_delivery(points: Sequence[DeliveryPoint]) -> StageDelivery:
    """A stage's figures from the rep's points, oldest first (none: an empty summary)."""
    trends = {
        name: trend([getattr(p, name) for p in points], threshold)
        for name, threshold in THRESHOLDS.items()
    }
    return StageDelivery(
        pitches=len(points), points=list(points[-POINTS:]), trends=DeliveryTrends(**trends)
    )


def exemplar_median(points: Sequence[DeliveryPoint]) -> DeliveryMedian | None:
    if not points:
        return None
    medians = {name: median([getattr(p, name) for p in points]) for name in FIGURES}
    longest = medians.pop("longest_pause_ms")
    return DeliveryMedian(
        **medians, longest_pause_ms=round(longest) if longest is not None else None
    )


async def delivery_trends(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID
) -> dict[str, StageDelivery]:
    """The user's delivery per stage key, from their analysed pitches (one statement). The
    caller checks that ``principal`` may see the user's profile; stages without an analysed
    pitch are absent."""
    by_stage: dict[str, list[DeliveryPoint]] = defaultdict(list)
    for row in await SpeechRepository.of(session, principal).pitch_deliveries(user_id):
        point = _point(row)
        if point is not None:
            by_stage[row.stage].append(point)
    return {stage: stage_delivery(points) for stage, points in by_stage.items()}


async def prep_delivery(
    session: AsyncSession,
    principal: Principal,
    stage: str,
    exemplar_clip_ids: Select[uuid.UUID],
) -> PrepDelivery:
    """The caller's newest analysed pitch of ``stage`` and the medians of the stage's
    exemplars (``exemplar_clip_ids``: the exemplars domain's statement of the clips it
    counts) that have a current analysis, in one statement."""
    rows = await SpeechRepository.of(session, principal).stage_deliveries(
        stage, principal.id, exemplar_clip_ids
    )
    mine: DeliveryPoint | None = None
    exemplars: list[DeliveryPoint] = []
    for row, newest_of_mine, exemplar in rows:
        point = _point(row)
        if point is None:
            continue
        if newest_of_mine:
            mine = point
        if exemplar:
            exemplars.append(point)
    return PrepDelivery(
        mine=mine,
        exemplar_median=exemplar_median(exemplars),
        exemplars_analyzed=len(exemplars),
    )


def empty_stage_delivery() -> StageDelivery:
    """A stage where the rep has no analysed pitch."""
    return stage_delivery([])
