"""Timestamped, threaded feedback on clips: the rules for writing, reading and moderating it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.clips.access import OVERSEERS, can_see
from app.clips.models import Clip
from app.clips.repository import ClipRepository
from app.clips.service import ensure_visible, get_clip
from app.db import utcnow
from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.events import service as events
from app.events import types as event_types
from app.feedback.models import Feedback
from app.feedback.present import event_data
from app.feedback.repository import THREAD_ORDER, FeedbackItem, FeedbackRepository
from app.feedback.schemas import (
    MAX_ANNOTATION_POINTS,
    Annotation,
    FeedbackCreate,
    FeedbackUpdate,
    too_many_points,
)
from app.notifications.models import NotificationKind
from app.notifications.service import Cause, notify
from app.pagination import PageParams, cut_page
from app.playback.service import is_playable
from app.search import service as search
from app.stages.service import skill_keys
from app.tenancy import Principal
from app.users.repository import UserRepository

EXCERPT_CHARS = 140


async def _announced(
    session: AsyncSession, principal: Principal, item: Feedback, event_type: str
) -> FeedbackItem:
    """The item as the API shows it (what the caller's response returns too), recorded as
    ``event_type`` in the change's transaction."""
    await session.flush()
    shown = await FeedbackRepository.of(session, principal).item(item.id, principal.id)
    await events.record(
        session,
        org_id=item.org_id,
        type=event_type,
        data=event_data(shown),
        clip_id=item.clip_id,
    )
    return shown


def _invalid(field_name: str, message: str, code: str) -> Unprocessable:
    return Unprocessable(
        message, code=code, details=[{"loc": ["body", field_name], "msg": message}]
    )


def _check_range(clip: Clip, timestamp_ms: int, end_ms: int | None) -> None:
    duration = clip.duration_ms
    if duration is not None and timestamp_ms > duration:
        raise _invalid(
            "timestamp_ms",
            f"timestamp_ms is beyond the clip's duration ({duration} ms).",
            "position_out_of_range",
        )
    if end_ms is not None:
        if end_ms <= timestamp_ms:
            raise _invalid("end_ms", "end_ms must be after timestamp_ms.", "invalid_range")
        if duration is not None and end_ms > duration:
            raise _invalid(
                "end_ms",
                f"end_ms is beyond the clip's duration ({duration} ms).",
                "position_out_of_range",
            )


async def _check_skill(session: AsyncSession, clip: Clip, skill: str | None) -> None:
    if skill is not None and skill not in await skill_keys(session, clip.org_id, clip.stage):
        raise _invalid(
            "skill", f"{skill!r} is not a skill of the stage {clip.stage!r}.", "unknown_skill"
        )


async def _check_mentions(
    session: AsyncSession, principal: Principal, clip: Clip, mentions: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    wanted = list(dict.fromkeys(mentions))
    if not wanted:
        return []
    users = await UserRepository.of(session, principal).by_ids(wanted)
    unknown = [str(u) for u in wanted if u not in users or not users[u].is_active]
    if unknown:
        raise Unprocessable(
            "Mentions must be active users of your organization.",
            code="invalid_mention",
            details=[{"loc": ["body", "mentions"], "unknown": unknown}],
        )
    blind = [str(u) for u in wanted if not await can_see(session, users[u], clip)]
    if blind:
        raise Unprocessable(
            "Some mentioned users cannot see this clip (it is private).",
            code="mention_cannot_see_clip",
            details=[{"loc": ["body", "mentions"], "users": blind}],
        )
    return wanted


async def _check_response_clip(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID | None
) -> None:
    if clip_id is None:
        return
    if not await ClipRepository.of(session, principal).is_own_feedback_clip(principal.id, clip_id):
        raise _invalid(
            "response_clip_id",
            "response_clip_id must be a clip of kind 'feedback' that you uploaded.",
            "invalid_response_clip",
        )


def _check_annotation(annotation: Annotation | None, max_points: int) -> None:
    """PEERPITCH_ANNOTATION_MAX_POINTS, when lower than the schema's bound (a static
    MAX_ANNOTATION_POINTS, checked before validation); answered as the schema would."""
    if annotation is None:
        return
    problem = too_many_points(annotation.point_count(), max_points)
    if problem:
        raise Unprocessable(
            f"The annotation is too large: {problem}.",
            details=[{"loc": ["body", "annotation"], "msg": problem, "type": "value_error"}],
        )


def _ensure_watchable(clip: Clip) -> None:
    if not is_playable(clip):
        raise Conflict(
            "Feedback opens once the clip can be watched (status viewable or ready).",
            code="not_viewable",
        )


async def create_feedback(
    session: AsyncSession,
    principal: Principal,
    clip_id: uuid.UUID,
    data: FeedbackCreate,
    *,
    max_points: int = MAX_ANNOTATION_POINTS,
) -> FeedbackItem:
    _check_annotation(data.annotation, max_points)
    clip = await get_clip(session, principal, clip_id)
    _ensure_watchable(clip)
    repo = FeedbackRepository.of(session, principal)
    root: Feedback | None = None
    if data.parent_id is not None:
        parent = await repo.on_clip(clip.id, data.parent_id)
        if parent is None:
            raise _invalid("parent_id", "parent_id is not feedback on this clip.", "invalid_parent")
        if parent.parent_id is not None:
            root = await repo.find(parent.parent_id)
        else:
            root = parent
        assert root is not None
        timestamp_ms, end_ms = root.timestamp_ms, root.end_ms
    else:
        if data.timestamp_ms is None:
            raise _invalid("timestamp_ms", "A new thread needs timestamp_ms.", "missing_timestamp")
        timestamp_ms, end_ms = data.timestamp_ms, data.end_ms
        _check_range(clip, timestamp_ms, end_ms)
    await _check_skill(session, clip, data.skill)
    mentions = await _check_mentions(session, principal, clip, data.mentions)
    await _check_response_clip(session, principal, data.response_clip_id)

    item = Feedback(
        org_id=principal.org_id,
        clip_id=clip.id,
        author_id=principal.id,
        parent_id=root.id if root else None,
        body=data.body,
        timestamp_ms=timestamp_ms,
        end_ms=end_ms,
        skill=data.skill,
        annotation=data.annotation.stored() if data.annotation else None,
        response_clip_id=data.response_clip_id,
        mentions=[str(m) for m in mentions],
    )
    session.add(item)
    await session.flush()
    await _index(session, item)
    if root is None:
        await ClipRepository.of(session, principal).add_open_feedback(clip.id, +1)
    await _notify_new(session, principal, clip, item, root, mentions)
    return await _announced(session, principal, item, event_types.FEEDBACK_CREATED)


async def _notify_new(
    session: AsyncSession,
    principal: Principal,
    clip: Clip,
    item: Feedback,
    root: Feedback | None,
    mentions: list[uuid.UUID],
) -> None:
    recipients: list[tuple[uuid.UUID, NotificationKind]] = [
        (m, NotificationKind.mention) for m in mentions
    ]
    if root is not None:
        writers = await FeedbackRepository(session, clip.org_id).thread_authors(root.id)
        recipients += [(w, NotificationKind.feedback_reply) for w in writers]
    recipients.append((clip.owner_id, NotificationKind.feedback_on_my_clip))
    cause = Cause(
        org_id=clip.org_id,
        actor_id=principal.id,
        clip_id=clip.id,
        feedback_id=item.id,
        data={
            "clip_title": clip.title,
            "timestamp_ms": item.timestamp_ms,
            "excerpt": item.body[:EXCERPT_CHARS],
            "skill": item.skill,
        },
    )
    await notify(session, cause, recipients)


async def _index(session: AsyncSession, item: Feedback) -> None:
    """The item as it now reads, in the search index (app.search)."""
    await search.index_feedback(
        session,
        org_id=item.org_id,
        feedback_id=item.id,
        clip_id=item.clip_id,
        thread_id=item.parent_id or item.id,
        timestamp_ms=item.timestamp_ms,
        end_ms=item.end_ms,
        body=item.body,
    )


@dataclass(frozen=True)
class FeedbackFilters:
    resolved: bool | None = None
    skill: str | None = None
    author_id: uuid.UUID | None = None


@dataclass
class Thread:
    root: FeedbackItem
    replies: list[FeedbackItem] = field(default_factory=list)


def _thread_key(item: FeedbackItem) -> tuple[int, datetime, uuid.UUID]:
    return item.timestamp_ms, item.created_at, item.id


def _reply_key(item: FeedbackItem) -> tuple[datetime, uuid.UUID]:
    return item.created_at, item.id


async def list_threads(
    session: AsyncSession,
    principal: Principal,
    clip_id: uuid.UUID,
    filters: FeedbackFilters,
    page: PageParams,
) -> tuple[list[Thread], str | None]:
    """One page of threads and all their replies in a single statement. Returns the
    threads in playback order (each item carrying the caller's helpful mark) and the next
    cursor."""
    await ensure_visible(session, principal, clip_id)
    items = await FeedbackRepository.of(session, principal).thread_page_items(
        clip_id=clip_id,
        viewer_id=principal.id,
        resolved=filters.resolved,
        skill=filters.skill,
        author_id=filters.author_id,
        page=page,
    )
    ordered = sorted((r for r in items if r.parent_id is None), key=_thread_key)
    kept, cursor = cut_page(ordered, THREAD_ORDER, page)
    threads = {r.id: Thread(r) for r in kept}
    for reply in sorted((r for r in items if r.parent_id is not None), key=_reply_key):
        thread = threads.get(reply.parent_id)  # type: ignore[arg-type]
        if thread is not None:  # not a reply to the look-ahead thread
            thread.replies.append(reply)
    return list(threads.values()), cursor


async def get_thread(session: AsyncSession, principal: Principal, feedback_id: uuid.UUID) -> Thread:
    """The thread of a feedback item (the item's own when it is a thread root, its thread
    when it is a reply) with every reply, as the clip's feedback list shows it to the
    caller: the same visibility (another org's, or a clip the caller may not see: not
    found), tombstones included. One statement."""
    items = await FeedbackRepository.of(session, principal).thread_items(principal, feedback_id)
    roots = [r for r in items if r.parent_id is None]
    if not roots:
        raise NotFound("Feedback not found.")
    return Thread(roots[0], sorted((r for r in items if r.parent_id is not None), key=_reply_key))


async def get_feedback(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID
) -> tuple[Feedback, Clip]:
    """A feedback item on a clip the caller may see, with its clip; tombstones are gone."""
    found = await FeedbackRepository.of(session, principal).visible(principal, feedback_id)
    if found is None:
        raise NotFound("Feedback not found.")
    return found


async def update_feedback(
    session: AsyncSession,
    principal: Principal,
    feedback_id: uuid.UUID,
    data: FeedbackUpdate,
    *,
    max_points: int = MAX_ANNOTATION_POINTS,
) -> FeedbackItem:
    _check_annotation(data.annotation, max_points)
    item, clip = await get_feedback(session, principal, feedback_id)
    if item.author_id != principal.id:
        raise Forbidden("Only the author may edit feedback.")
    changes = data.model_dump(exclude_unset=True)
    if "skill" in changes:
        await _check_skill(session, clip, data.skill)
        item.skill = data.skill
    if "body" in changes and data.body is not None:
        item.body = data.body
        await _index(session, item)
    if "annotation" in changes:
        item.annotation = data.annotation.stored() if data.annotation else None
    if item.is_root and ("timestamp_ms" in changes or "end_ms" in changes):
        timestamp_ms = item.timestamp_ms if data.timestamp_ms is None else data.timestamp_ms
        end_ms = data.end_ms if "end_ms" in changes else item.end_ms
        _check_range(clip, timestamp_ms, end_ms)
        item.timestamp_ms, item.end_ms = timestamp_ms, end_ms
        await FeedbackRepository.of(session, principal).move_replies(item.id, timestamp_ms, end_ms)
        await search.move_thread(session, item.org_id, item.id, timestamp_ms, end_ms)
    now = utcnow()
    item.edited_at = now
    item.updated_at = now
    return await _announced(session, principal, item, event_types.FEEDBACK_UPDATED)


async def delete_feedback(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID
) -> None:
    """A thread root with replies becomes a tombstone; anything else is removed (and a
    tombstone whose last reply goes is removed with it)."""
    item, _clip = await get_feedback(session, principal, feedback_id)
    if item.author_id != principal.id and not principal.has_role(*OVERSEERS):
        raise Forbidden("Only the author, coaches and admins may delete feedback.")
    repo = FeedbackRepository.of(session, principal)
    if item.is_root and item.resolved_at is None:
        await ClipRepository.of(session, principal).add_open_feedback(item.clip_id, -1)
    tombstone = item.is_root and await repo.reply_count(item.id) > 0
    await search.unindex_feedback(session, item.org_id, item.id)
    await events.record(
        session,
        org_id=item.org_id,
        type=event_types.FEEDBACK_DELETED,
        data={
            "id": str(item.id),
            "clip_id": str(item.clip_id),
            "parent_id": None if item.parent_id is None else str(item.parent_id),
            # A thread with replies stays as a tombstone (deleted: true) in lists.
            "tombstone": tombstone,
        },
        clip_id=item.clip_id,
    )
    if tombstone:
        item.deleted_at = utcnow()
        item.body = ""
        item.annotation = None
        item.mentions = []
        item.response_clip_id = None
        await session.flush()
        return
    parent_id = item.parent_id
    await session.delete(item)
    await session.flush()
    if parent_id is not None:
        await repo.delete_empty_tombstone(parent_id)


async def set_resolved(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID, resolved: bool
) -> FeedbackItem:
    item, clip = await get_feedback(session, principal, feedback_id)
    if not item.is_root:
        raise Unprocessable("Only a thread (not a reply) can be resolved.", code="not_a_thread")
    allowed = {clip.owner_id, item.author_id}
    if principal.id not in allowed and not principal.has_role(*OVERSEERS):
        raise Forbidden("Only the clip's owner, the author, coaches and admins resolve feedback.")
    changed: str | None = None
    feedback = FeedbackRepository.of(session, principal)
    if await feedback.set_resolution(item, principal.id if resolved else None):
        if resolved:
            changed = event_types.FEEDBACK_RESOLVED
            cause = Cause(
                org_id=clip.org_id,
                actor_id=principal.id,
                clip_id=clip.id,
                feedback_id=item.id,
                data={"clip_title": clip.title, "excerpt": item.body[:EXCERPT_CHARS]},
            )
            await notify(session, cause, [(item.author_id, NotificationKind.feedback_resolved)])
        else:
            changed = event_types.FEEDBACK_REOPENED
        await ClipRepository.of(session, principal).add_open_feedback(
            clip.id, -1 if resolved else +1
        )
    if changed is None:  # repeating a resolve or a reopen changes nothing: no event
        await session.flush()
        return await feedback.item(item.id, principal.id)
    return await _announced(session, principal, item, changed)


async def set_helpful(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID, helpful: bool
) -> tuple[Feedback, bool]:
    """Add or take back the caller's helpful mark; repeating either changes nothing. The
    item's helpful_count moves only when a mark was really added or removed."""
    item, _clip = await get_feedback(session, principal, feedback_id)
    if helpful and item.author_id == principal.id:
        raise Forbidden("You cannot mark your own feedback as helpful.")
    await FeedbackRepository.of(session, principal).set_helpful_mark(item, principal.id, helpful)
    return item, helpful
