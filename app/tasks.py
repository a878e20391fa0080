"""The composition root of background work: the product's job handlers and periodic
tasks, registered into ``app.jobs.registry.registry``, and the clip lifecycle's hooks into
other domains. Importing this module does it once; the worker runtime imports it."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.tasks import PURGE_INTERVAL_S as LOGIN_FAILURES_PURGE_INTERVAL_S
from app.auth.tasks import purge_login_failures
from app.clips import lifecycle
from app.clips.tasks import expire_uploads, fail_abandoned_transcodes, purge_clip
from app.clips.transcode import transcode_clip
from app.config import ConfigError, Settings, check_config
from app.events import service as events
from app.events.tasks import purge_expired_events
from app.exemplars.service import notify_pitch_ready
from app.exemplars.tasks import REFRESH_INTERVAL_S, refresh_exemplar_scores
from app.idempotency.tasks import purge_idempotency_records
from app.jobs.kinds import (
    ANALYZE_SPEECH,
    PURGE_CLIP,
    REMATCH_TALK_TRACK,
    TRANSCODE_CLIP,
    WEBHOOK_DELIVER,
)
from app.jobs.registry import registry
from app.speech import check_engine
from app.speech_analysis.maintenance import enqueue_rematch
from app.speech_analysis.service import enqueue_analysis
from app.speech_analysis.tasks import analyze_speech, rematch_talk_track
from app.stages.service import on_talk_track_changed
from app.webhooks import service as webhooks
from app.webhooks.tasks import deliver_webhook, fail_stranded_deliveries, purge_deliveries

registry.add(TRANSCODE_CLIP, transcode_clip)
registry.add(PURGE_CLIP, purge_clip)
registry.add(WEBHOOK_DELIVER, deliver_webhook)
registry.add(ANALYZE_SPEECH, analyze_speech)
registry.add(REMATCH_TALK_TRACK, rematch_talk_track)
# Periodic tasks run in every worker; each is idempotent and safe to overlap.
registry.register_periodic("uploads.expire", 300, expire_uploads)
registry.register_periodic("idempotency.purge_expired", 300, purge_idempotency_records)
registry.register_periodic("clips.fail_abandoned_transcodes", 60, fail_abandoned_transcodes)
registry.register_periodic("exemplars.refresh_scores", REFRESH_INTERVAL_S, refresh_exemplar_scores)
registry.register_periodic("events.purge_expired", 3600, purge_expired_events)
registry.register_periodic("webhooks.purge_deliveries", 3600, purge_deliveries)
registry.register_periodic("webhooks.fail_stranded", 300, fail_stranded_deliveries)
registry.register_periodic(
    "auth.purge_login_failures", LOGIN_FAILURES_PURGE_INTERVAL_S, purge_login_failures
)

# Every recorded event becomes a delivery for each enabled webhook subscribed to it, in the
# event's transaction.
events.on_recorded(webhooks.fan_out)


async def _notify_pitch_ready(
    session: AsyncSession, clip_id: uuid.UUID, settings: Settings
) -> None:
    # The owner hears about it with the exemplars it links to, in the transaction that
    # marks the clip ready (so exactly once).
    await notify_pitch_ready(session, clip_id, settings.exemplar_links)


lifecycle.on_ready(_notify_pitch_ready)


async def _analyze_speech(session: AsyncSession, clip_id: uuid.UUID, _settings: Settings) -> None:
    # Its own job, queued behind transcodes, in the transaction that makes the clip ready.
    await enqueue_analysis(session, clip_id)


lifecycle.on_ready(_analyze_speech)
# An admin's edit of a stage's talk track re-matches the stage's stored transcripts.
on_talk_track_changed(enqueue_rematch)


def check_startup(settings: Settings) -> None:
    """What a worker checks before it claims anything (process and embedded alike): the
    speech engine it would run, so a misconfiguration (whisper without a model folder) stops
    the start with a clear message instead of failing every analysis."""
    check_config(settings, media=True)
    try:
        speech = settings.speech_settings()
    except ValueError as exc:
        raise ConfigError(f"speech analysis settings: {exc}") from exc
    check_engine(speech)
