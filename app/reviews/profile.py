"""A rep's skill profile: review scores and feedback per stage and skill, with a 90-day trend,
and per stage the delivery of their analysed pitches (app.speech_analysis.delivery).

The recency weighting lives in :func:`weighted_average` so it is documented and tested once.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.clips.access import OVERSEERS
from app.db import utcnow
from app.errors import Forbidden
from app.feedback.repository import FeedbackRepository
from app.reviews.repository import ReviewRepository
from app.reviews.schemas import (
    FeedbackStats,
    ScoreStats,
    SkillProfile,
    SkillProfileItem,
    StageProfile,
    Trend,
    TrendWindow,
)
from app.speech_analysis.delivery import delivery_trends, empty_stage_delivery
from app.stages.service import list_stages
from app.tenancy import Principal
from app.trends import direction
from app.users.repository import UserRepository
from app.users.schemas import PersonOut

HALF_LIFE_DAYS = 60.0
TREND_DAYS = 90
TREND_WINDOWS = 3
# A change of a quarter point on the 1..5 scale between the first and last window is a trend.
TREND_THRESHOLD = 0.25


def weighted_average(scores: Iterable[tuple[int, datetime]], now: datetime) -> float | None:
    """Mean of scores where each weighs 0.5 ** (age in days / 60): a score from two months ago
    counts half as much as one from today, four months ago a quarter."""
    total = weights = 0.0
    for score, at in scores:
        age_days = max((now - at).total_seconds(), 0.0) / 86400
        weight = 0.5 ** (age_days / HALF_LIFE_DAYS)
        total += score * weight
        weights += weight
    return round(total / weights, 2) if weights else None


def _mean(values: Sequence[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


@dataclass
class _SkillFacts:
    scores: list[tuple[int, datetime]] = field(default_factory=list)
    open: int = 0
    resolved: int = 0
    recent_feedback: list[datetime] = field(default_factory=list)


def trend(facts: _SkillFacts, now: datetime) -> Trend:
    span = timedelta(days=TREND_DAYS / TREND_WINDOWS)
    windows = []
    for i in range(TREND_WINDOWS):
        start = now - span * (TREND_WINDOWS - i)
        end = start + span
        last = i == TREND_WINDOWS - 1
        in_window = [s for s, at in facts.scores if start <= at < end or (last and at == end)]
        feedback = sum(
            1 for at in facts.recent_feedback if start <= at < end or (last and at == end)
        )
        windows.append(
            TrendWindow(
                start=start,
                end=end,
                score_count=len(in_window),
                score_average=_mean(in_window),
                feedback_count=feedback,
            )
        )
    scored = [w.score_average for w in windows if w.score_average is not None]
    change = round(scored[-1] - scored[0], 2) if len(scored) >= 2 else None
    return Trend(
        windows=windows,
        change=change,
        direction=direction(change, TREND_THRESHOLD, up="improving", down="declining"),
    )


async def skill_profile(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID
) -> SkillProfile:
    user = await UserRepository.of(session, principal).get(user_id)
    if user.id != principal.id and not principal.has_role(*OVERSEERS):
        raise Forbidden("Only the user, coaches and admins see a skill profile.")
    now = utcnow()
    facts: dict[tuple[str, str], _SkillFacts] = defaultdict(_SkillFacts)

    for stage_key, skill_key, score, at in await ReviewRepository.of(session, principal).scores_of(
        user.id
    ):
        facts[(stage_key, skill_key)].scores.append((score, at))

    # Feedback threads tagged with a skill on the user's (live) clips; tombstones excluded.
    feedback = FeedbackRepository.of(session, principal)
    for tally in await feedback.skill_tallies(user.id):
        item = facts[(tally.stage, tally.skill)]
        if tally.resolved:
            item.resolved += tally.threads
        else:
            item.open += tally.threads
    for note in await feedback.skill_notes_since(user.id, now - timedelta(days=TREND_DAYS)):
        facts[(note.stage, note.skill)].recent_feedback.append(note.created_at)

    # Delivery figures of the user's analysed pitches, per stage (app.speech_analysis).
    delivery = await delivery_trends(session, principal, user.id)

    stages = []
    for stage in await list_stages(session, principal):
        items = []
        for skill in stage.skills:
            f = facts.get((stage.key, skill.key), _SkillFacts())
            values = [s for s, _ in f.scores]
            items.append(
                SkillProfileItem(
                    key=skill.key,
                    name=skill.name,
                    scores=ScoreStats(
                        count=len(values),
                        average=_mean(values),
                        weighted_average=weighted_average(f.scores, now),
                        last_scored_at=max((at for _, at in f.scores), default=None),
                    ),
                    feedback=FeedbackStats(open=f.open, resolved=f.resolved),
                    trend=trend(f, now),
                )
            )
        stages.append(
            StageProfile(
                key=stage.key,
                name=stage.name,
                skills=items,
                delivery=delivery.get(stage.key) or empty_stage_delivery(),
            )
        )
    return SkillProfile(user=PersonOut.model_validate(user), generated_at=now, stages=stages)
