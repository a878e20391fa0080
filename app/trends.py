"""How the figures that have a trend (review scores, delivery metrics) name it: a change
between an earlier and a recent average is a direction once it passes the figure's threshold,
and "steady" below it."""

from __future__ import annotations


def direction(change: float | None, threshold: float, *, up: str, down: str) -> str | None:
    """``up`` when ``change`` ≥ ``threshold``, ``down`` when ≤ -``threshold``, else
    ``"steady"``; None when there is no change to judge (too few data)."""
    if change is None:
        return None
    if change >= threshold:
        return up
    if change <= -threshold:
        return down
    return "steady"
