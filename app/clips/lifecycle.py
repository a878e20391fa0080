"""The clip lifecycle: the only code that changes ``Clip.status`` (a test enforces it).

    awaiting_upload ──upload completed──▶ processing ──first segments──▶ viewable
       │       ▲                              │  ╲                         │  ▲ (republished)
upload │       │ new upload (only when        │   ╲──────── ready ◀───────┘──┘
aborted│       │ the upload had ended)        │                ▲ encoded
expired▼       │                              ▼                │
         failed ◀──────── transcode failed ───┴────────────────┘ (never from ready)

A clip whose source never arrived (its upload was aborted or expired) may start a new
upload: ``failed → awaiting_upload``; so may a clip still awaiting an upload whose deadline
passed before the expiry task ran (``awaiting_upload → awaiting_upload``). A clip that
failed in processing stays failed.

Deleting is not a status: ``deleted_at`` hides the clip everywhere and a purge job removes
its media, whatever the status was.

Every transition is one guarded UPDATE (the allowed sources from ``TRANSITIONS``, and never
on a deleted clip), so a worker and a request racing on one clip cannot both win; each
returns whether it happened. Its side effects run in the caller's transaction, so they
happen exactly when the transition commits: the transcode job on "processing", the purge
job on delete, and the ready hooks (e.g. the owner's "your pitch is ready") on "ready".
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.sql.elements import ColumnElement

from app.clips.models import Clip, ClipStatus
from app.clips.schemas import ClipOut
from app.config import Settings
from app.db import utcnow
from app.errors import Conflict
from app.events import service as events
from app.events import types as event_types
from app.jobs.kinds import PURGE_CLIP, TRANSCODE_CLIP
from app.jobs.service import enqueue
from app.notifications.models import NotificationKind
from app.notifications.service import Cause, notify
from app.uploads.models import Upload, UploadStatus

S = ClipStatus

# Which statuses each status may move to. ``viewable → viewable`` republishes the manifest
# as more segments are encoded; ``awaiting_upload → awaiting_upload`` replaces an upload
# whose deadline passed. "ready" is an end state; "failed" is one too, except for a clip
# whose upload ended before the source arrived (``UPLOAD_ENDED``): it may start a new one.
TRANSITIONS: Mapping[ClipStatus, frozenset[ClipStatus]] = {
    S.awaiting_upload: frozenset({S.awaiting_upload, S.processing, S.failed}),
    S.processing: frozenset({S.viewable, S.ready, S.failed}),
    S.viewable: frozenset({S.viewable, S.ready, S.failed}),
    S.ready: frozenset(),
    S.failed: frozenset({S.awaiting_upload}),
}
# The error codes of a clip that failed because its upload ended unfinished.
UPLOAD_ENDED = frozenset({"upload_aborted", "upload_expired"})
INITIAL = S.awaiting_upload
ENCODING = frozenset({S.processing, S.viewable})
ERROR_MESSAGE_LIMIT = 2000

# Runs in the transaction that marks a clip ready: (session, clip id, settings).
ReadyHook = Callable[[AsyncSession, uuid.UUID, Settings], Awaitable[None]]
_ready_hooks: list[ReadyHook] = []


class IllegalTransition(RuntimeError):
    """Code asked for a transition the table does not allow: a bug, not a user error."""


def sources_of(target: ClipStatus) -> frozenset[ClipStatus]:
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def on_ready(hook: ReadyHook) -> None:
    """Attach a side effect of "ready" (wired once by the composition root, app.tasks)."""
    if hook not in _ready_hooks:
        _ready_hooks.append(hook)


# --- events: every transition is announced in its own transaction ---------------------


def clip_data(clip: Clip) -> dict[str, Any]:
    """A clip as the API shows it, minus what belongs to one caller (progress, the open
    upload) and signed URLs (they expire; a client fetches its own)."""
    return ClipOut.of(clip).model_dump(mode="json", exclude={"my_progress", "upload"})


async def _announce(
    session: AsyncSession, clip_ids: Collection[uuid.UUID], event_type: str
) -> list[Clip]:
    """Record ``event_type`` for each clip, with the clip as it is now; returns the clips."""
    if not clip_ids:
        return []
    clips = list(
        await session.scalars(
            select(Clip)
            .options(joinedload(Clip.owner))
            .where(Clip.id.in_(clip_ids))
            .order_by(Clip.id)
            .execution_options(populate_existing=True)
        )
    )
    for clip in clips:
        await events.record(
            session,
            org_id=clip.org_id,
            type=event_type,
            data=clip_data(clip),
            clip_id=clip.id,
        )
    return clips


def new_clip(**fields: Any) -> Clip:
    """A new clip, in the initial status (the caller adds it to the session)."""
    return Clip(status=INITIAL, **fields)


async def _move(
    session: AsyncSession,
    where: ColumnElement[bool],
    target: ClipStatus,
    *,
    only_from: Collection[ClipStatus] | None = None,
    values: Mapping[str, Any] | None = None,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Move the clips matching ``where`` to ``target`` if their status allows it; returns
    the (org_id, id) of those that moved."""
    allowed = sources_of(target)
    if only_from is not None:
        if not set(only_from) <= allowed:
            raise IllegalTransition(f"{sorted(only_from)} → {target} is not allowed")
        allowed = frozenset(only_from)
    rows = await session.execute(
        update(Clip)
        .where(where, Clip.deleted_at.is_(None), Clip.status.in_(allowed))
        .values(status=target, updated_at=utcnow(), **(values or {}))
        .returning(Clip.org_id, Clip.id)
    )
    return [(org_id, clip_id) for org_id, clip_id in rows.all()]


async def upload_completed(
    session: AsyncSession, clip: Clip, *, source_key: str | None = None
) -> None:
    """awaiting_upload → processing once the source is stored, and its transcode job in the
    same transaction (a committed upload always has its transcode). Raises ``Conflict``
    when the clip was deleted or its upload ended while the bytes were streaming outside any
    transaction."""
    extra = {"source_key": source_key} if source_key else {}
    moved = await _move(
        session,
        Clip.id == clip.id,
        S.processing,
        only_from=(S.awaiting_upload,),
        values={"progress": 0.0, **extra},
    )
    if not moved:
        raise Conflict("The clip changed during the upload.", code="clip_changed")
    await _announce(session, [clip.id], event_types.CLIP_UPLOADED)
    await enqueue(
        session,
        TRANSCODE_CLIP,
        {"clip_id": str(clip.id), "org_id": str(clip.org_id)},
        dedupe_key=f"{TRANSCODE_CLIP}:{clip.id}",
    )


def _has_open_upload() -> ColumnElement[bool]:
    return exists().where(Upload.clip_id == Clip.id, Upload.status == UploadStatus.active)


async def upload_ended(session: AsyncSession, clip_id: uuid.UUID, code: str, message: str) -> bool:
    """awaiting_upload → failed: the upload was aborted or expired before it completed.
    Nothing moves while another upload of the clip is open (a new upload replaced the
    ended one): flush the ended upload's status first."""
    if code not in UPLOAD_ENDED:
        raise IllegalTransition(f"upload_ended with {code!r}")
    values = {"error_code": code, "error_message": message}
    moved = await _move(
        session,
        (Clip.id == clip_id) & ~_has_open_upload(),
        S.failed,
        only_from=(S.awaiting_upload,),
        values=values,
    )
    await _announce(session, [c for _, c in moved], event_types.CLIP_FAILED)
    return bool(moved)


async def upload_restarted(session: AsyncSession, clip: Clip) -> bool:
    """failed (its upload aborted or expired) → awaiting_upload, clearing the error, before a
    new upload of the clip starts; or awaiting_upload → awaiting_upload (same guard, so two
    restarts racing on one clip take turns). False when the clip is in no such state."""
    moved = await _move(
        session,
        (Clip.id == clip.id)
        & or_(Clip.status == S.awaiting_upload, Clip.error_code.in_(UPLOAD_ENDED)),
        S.awaiting_upload,
        values={"error_code": None, "error_message": None, "progress": 0.0},
    )
    return bool(moved)


async def publish(
    session: AsyncSession,
    clip_id: uuid.UUID,
    target: ClipStatus,
    media: dict[str, Any],
    settings: Settings,
    **facts: Any,
) -> bool:
    """processing/viewable → viewable or ready, pointing the clip at ``media``. Never over
    an end state (a newer attempt's "ready", or "failed"); False when nothing moved."""
    if target not in (S.viewable, S.ready):
        raise IllegalTransition(f"publish to {target}")
    values: dict[str, Any] = {"media": media, **facts}
    if target == S.ready:
        values["progress"] = 1.0
    if target == S.viewable:
        # Announced once, when it first plays; republishing more segments is not news.
        first = await _move(
            session, Clip.id == clip_id, target, only_from=(S.processing,), values=values
        )
        if first:
            await _announce(session, [clip_id], event_types.CLIP_VIEWABLE)
            return True
    moved = await _move(session, Clip.id == clip_id, target, values=values)
    if moved and target == S.ready:
        await _announce(session, [clip_id], event_types.CLIP_READY)
        for hook in _ready_hooks:
            await hook(session, clip_id, settings)
    return bool(moved)


async def attach_captions(
    session: AsyncSession, clip_id: uuid.UUID, media_version: str, captions: dict[str, Any]
) -> bool:
    """Name stored caption files in a ready clip's media manifest, if it still plays
    ``media_version`` (a newer version has its own captions to come). Not a transition: the
    status stays; the row is locked, so a republish cannot interleave."""
    media = await session.scalar(
        select(Clip.media)
        .where(Clip.id == clip_id, Clip.deleted_at.is_(None), Clip.status == S.ready)
        .with_for_update()
    )
    if not media or str(media.get("version")) != media_version:
        return False
    await session.execute(
        update(Clip)
        .where(Clip.id == clip_id)
        .values(media={**media, "captions": captions}, updated_at=utcnow())
    )
    return True


async def record_progress(session: AsyncSession, clip_id: uuid.UUID, shown: float) -> None:
    """Encoding progress, monotonic: a retry restarting at 0 never makes the bar jump back."""
    await session.execute(
        update(Clip)
        .where(
            Clip.id == clip_id,
            Clip.deleted_at.is_(None),
            Clip.progress < shown,
            Clip.status.in_(ENCODING),
        )
        .values(progress=shown, updated_at=utcnow())
    )


async def processing_failed(
    session: AsyncSession, clip_ids: Collection[uuid.UUID], code: str, message: str
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """processing/viewable → failed, dropping the media reference (the caller deletes what
    was published while encoding). Returns the (org_id, id) of the clips that failed."""
    if not clip_ids:
        return []
    values = {
        "media": None,
        "error_code": code,
        "error_message": message[:ERROR_MESSAGE_LIMIT],
    }
    moved = await _move(session, Clip.id.in_(clip_ids), S.failed, only_from=ENCODING, values=values)
    for clip in await _announce(session, [c for _, c in moved], event_types.CLIP_FAILED):
        # A pitch that cannot be processed (too long, not a video, ...) tells its owner why.
        cause = Cause(
            org_id=clip.org_id,
            actor_id=None,
            clip_id=clip.id,
            data={"title": clip.title, "error": {"code": code, "message": values["error_message"]}},
        )
        await notify(session, cause, [(clip.owner_id, NotificationKind.pitch_failed)])
    return moved


async def delete(session: AsyncSession, clip: Clip) -> None:
    """Soft delete now (every read filters on deleted_at); the purge job removes the media."""
    clip.deleted_at = utcnow()
    await session.flush()
    await events.record(
        session,
        org_id=clip.org_id,
        type=event_types.CLIP_DELETED,
        data={
            "id": str(clip.id),
            "owner_id": str(clip.owner_id),
            "deleted_at": clip.deleted_at.isoformat().replace("+00:00", "Z"),
        },
        clip_id=clip.id,
    )
    await enqueue(
        session,
        PURGE_CLIP,
        {"clip_id": str(clip.id), "org_id": str(clip.org_id)},
        dedupe_key=f"{PURGE_CLIP}:{clip.id}",
    )
    await session.flush()
