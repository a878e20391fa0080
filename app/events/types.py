"""The event catalog: every type a domain may record, and the wildcard patterns clients
subscribe with ("clip.*")."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

CLIP_UPLOADED = "clip.uploaded"
CLIP_VIEWABLE = "clip.viewable"
CLIP_READY = "clip.ready"
CLIP_FAILED = "clip.failed"
CLIP_DELETED = "clip.deleted"
# A clip's speech analysis finished (ready, unavailable or failed): data holds the clip's
# id and owner and the analysis as GET /v1/clips/{id}/speech shows it.
CLIP_SPEECH_ANALYZED = "clip.speech_analyzed"
UPLOAD_EXPIRED = "upload.expired"
FEEDBACK_CREATED = "feedback.created"
FEEDBACK_UPDATED = "feedback.updated"
FEEDBACK_RESOLVED = "feedback.resolved"
FEEDBACK_REOPENED = "feedback.reopened"
FEEDBACK_DELETED = "feedback.deleted"
REVIEW_REQUEST_CREATED = "review_request.created"
REVIEW_REQUEST_COMPLETED = "review_request.completed"
REVIEW_REQUEST_DECLINED = "review_request.declined"
EXEMPLAR_MARKED = "exemplar.marked"
EXEMPLAR_UNMARKED = "exemplar.unmarked"
NOTIFICATION_CREATED = "notification.created"
# Sent only to one webhook endpoint on request (POST /v1/webhooks/{id}/test); never stored.
WEBHOOK_TEST = "webhook.test"

EVENT_TYPES: tuple[str, ...] = (
    CLIP_UPLOADED,
    CLIP_VIEWABLE,
    CLIP_READY,
    CLIP_FAILED,
    CLIP_DELETED,
    CLIP_SPEECH_ANALYZED,
    UPLOAD_EXPIRED,
    FEEDBACK_CREATED,
    FEEDBACK_UPDATED,
    FEEDBACK_RESOLVED,
    FEEDBACK_REOPENED,
    FEEDBACK_DELETED,
    REVIEW_REQUEST_CREATED,
    REVIEW_REQUEST_COMPLETED,
    REVIEW_REQUEST_DECLINED,
    EXEMPLAR_MARKED,
    EXEMPLAR_UNMARKED,
    NOTIFICATION_CREATED,
)
MAX_TYPE_LENGTH = 64


def is_valid_pattern(pattern: str) -> bool:
    """``*``, ``clip.*`` or an exact type of the catalog."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        return any(t.startswith(prefix) for t in EVENT_TYPES)
    return pattern in EVENT_TYPES or pattern == WEBHOOK_TEST


def matches(event_type: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)
