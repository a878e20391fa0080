"""When a view counts as completed: the player reported the end (`completed`) and the viewer
watched at least 90 % of the clip's duration (`watched_ms`). Judged whenever a view is read,
from the stored report and the clip's duration, never taken from the stored flag alone: a
client cannot claim a completion it did not watch, and rows written before the rule are
judged by it too. Watch progress, clip responses and exemplar completion rates all use it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ColumnElement, and_, cast

from app.clips.models import Clip
from app.views.models import ClipView

# 90 %, as integers: exact at the boundary on every backend.
SHARE_NUMERATOR = 9
SHARE_DENOMINATOR = 10


def is_completed(reported: bool, watched_ms: int, duration_ms: int | None) -> bool:
    """The rule on values already loaded. An unknown duration cannot be watched to 90 %."""
    if not reported or duration_ms is None:
        return False
    return watched_ms * SHARE_DENOMINATOR >= duration_ms * SHARE_NUMERATOR


def completed_sql() -> ColumnElement[bool]:
    """The rule in SQL, for a query that joins `ClipView` to its `Clip`. BIGINT arithmetic:
    ten times a 32-bit `watched_ms` overflows PostgreSQL's INTEGER."""
    return and_(
        ClipView.completed,
        Clip.duration_ms.is_not(None),
        cast(ClipView.watched_ms, BigInteger) * SHARE_DENOMINATOR
        >= cast(Clip.duration_ms, BigInteger) * SHARE_NUMERATOR,
    )
