"""Imports every domain's models so the metadata is complete (Alembic, tests, the app)."""

from app.auth.models import LoginFailure, RefreshToken
from app.clips.models import Clip
from app.db import Base
from app.events.models import Event, EventSequence
from app.exemplars.models import Exemplar, ExemplarEvent, ExemplarLink
from app.feedback.models import Feedback, FeedbackReaction
from app.idempotency.models import IdempotencyRecord
from app.jobs.models import Job
from app.notifications.models import Notification
from app.orgs.models import Organization
from app.readcache.models import ReadVersion
from app.reviews.models import ReviewRequest, ReviewScore
from app.search.models import SearchDocument
from app.speech_analysis.models import ClipSpeech
from app.stages.models import Skill, Stage
from app.uploads.models import Upload
from app.users.models import User
from app.views.models import ClipView
from app.webhooks.models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint

__all__ = [
    "Base",
    "Clip",
    "ClipSpeech",
    "ClipView",
    "Event",
    "EventSequence",
    "Exemplar",
    "ExemplarEvent",
    "ExemplarLink",
    "Feedback",
    "FeedbackReaction",
    "IdempotencyRecord",
    "Job",
    "LoginFailure",
    "Notification",
    "Organization",
    "ReadVersion",
    "RefreshToken",
    "ReviewRequest",
    "ReviewScore",
    "SearchDocument",
    "Skill",
    "Stage",
    "Upload",
    "User",
    "WebhookDelivery",
    "WebhookDeliveryAttempt",
    "WebhookEndpoint",
]
