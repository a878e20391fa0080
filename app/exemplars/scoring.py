"""The exemplar score: one function, so the README's formula and the ranking never drift.

    score = 0.30 * endorsed                          (marked by a coach or an admin)
          + 0.25 * (1 - exp(-helpful / 10))          (helpful marks on its feedback)
          + 0.20 * completion_rate                   (viewers who watched 90 % and the end)
          + 0.15 * (1 - exp(-viewers / 20))          (distinct viewers)
          + 0.10 * 0.5 ** (age_days / 90)            (recency: halves every 90 days)

Each term is in 0..1, so the score is in 0..1. Counts saturate (10 helpful marks give 63% of
their term, 30 give 95%) so a popular clip cannot drown a coach's endorsement; the
completion rate only counts once a few people watched (below MIN_VIEWERS_FOR_COMPLETION it
is shrunk toward zero) so one viewer who finished does not make a clip look perfect.
"""

from __future__ import annotations

import math

W_ENDORSED = 0.30
W_HELPFUL = 0.25
W_COMPLETION = 0.20
W_VIEWERS = 0.15
W_RECENCY = 0.10
HELPFUL_SCALE = 10.0
VIEWERS_SCALE = 20.0
RECENCY_HALF_LIFE_DAYS = 90.0
MIN_VIEWERS_FOR_COMPLETION = 5


def exemplar_score(
    *, endorsed: bool, helpful: int, completion_rate: float, viewers: int, age_days: float
) -> float:
    confidence = min(viewers, MIN_VIEWERS_FOR_COMPLETION) / MIN_VIEWERS_FOR_COMPLETION
    score = (
        W_ENDORSED * (1.0 if endorsed else 0.0)
        + W_HELPFUL * (1.0 - math.exp(-max(helpful, 0) / HELPFUL_SCALE))
        + W_COMPLETION * min(max(completion_rate, 0.0), 1.0) * confidence
        + W_VIEWERS * (1.0 - math.exp(-max(viewers, 0) / VIEWERS_SCALE))
        + W_RECENCY * math.pow(0.5, max(age_days, 0.0) / RECENCY_HALF_LIFE_DAYS)
    )
    return round(score, 4)
