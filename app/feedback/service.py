"""Timestamped, threaded feedback on clips: the rules for writing, reading and moderating it."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.clips.access import OVERSEERS, can_see, visible_to
from app.clips.models import Clip, ClipKind
from app.clips.service import ensure_visible, get_clip
from app.db import utcnow, uuid7
from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.feedback.models import Feedback, FeedbackReaction
from app.feedback.schemas import FeedbackCreate, FeedbackUpdate
from app.notifications.models import NotificationKind
from app.notifications.service import Cause, notify
from app.pagination import (
    PageParams,
    SortKey,
    cut_page,
    keyset_page_params,
    keyset_page_shape,
)
from app.playback.service import is_playable
from app.stages.service import skill_keys
from app.tenancy import Principal
from app.users.models import User

HELPFUL = "helpful"
EXCERPT_CHARS = 140
_THREAD_ORDER = (
    SortKey(Feedback.timestamp_ms),
    SortKey(Feedback.created_at),
    SortKey(Feedback.id),
)


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
    users = {
        u.id: u
        for u in (
            await session.scalars(
                select(User).where(User.org_id == principal.org_id, User.id.in_(wanted))
            )
        ).all()
    }
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
    found = await session.scalar(
        select(Clip.id).where(
            Clip.id == clip_id,
            Clip.org_id == principal.org_id,
            Clip.owner_id == principal.id,
            Clip.kind == ClipKind.feedback,
            Clip.deleted_at.is_(None),
        )
    )
    if found is None:
        raise _invalid(
            "response_clip_id",
            "response_clip_id must be a clip of kind 'feedback' that you uploaded.",
            "invalid_response_clip",
        )


def _ensure_watchable(clip: Clip) -> None:
    if not is_playable(clip):
        raise Conflict(
            "Feedback opens once the clip can be watched (status viewable or ready).",
            code="not_viewable",
        )


async def create_feedback(
    session: AsyncSession, principal: Principal, clip_id: uuid.UUID, data: FeedbackCreate
) -> Feedback:
    clip = await get_clip(session, principal, clip_id)
    _ensure_watchable(clip)
    root: Feedback | None = None
    if data.parent_id is not None:
        parent = await session.scalar(
            select(Feedback).where(
                Feedback.org_id == principal.org_id,
                Feedback.clip_id == clip.id,
                Feedback.id == data.parent_id,
            )
        )
        if parent is None:
            raise _invalid("parent_id", "parent_id is not feedback on this clip.", "invalid_parent")
        if parent.parent_id is not None:
            root = await session.get(Feedback, parent.parent_id)
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
        annotation=data.annotation.model_dump(mode="json") if data.annotation else None,
        response_clip_id=data.response_clip_id,
        mentions=[str(m) for m in mentions],
    )
    session.add(item)
    await session.flush()
    if root is None:
        await _count_open(session, clip.id, +1)
    await _notify_new(session, principal, clip, item, root, mentions)
    return item


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
        writers = await session.scalars(
            select(Feedback.author_id)
            .where(
                Feedback.org_id == clip.org_id,
                (Feedback.id == root.id) | (Feedback.parent_id == root.id),
            )
            .distinct()
        )
        recipients += [(w, NotificationKind.feedback_reply) for w in writers.all()]
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
    notify(session, cause, recipients)


@dataclass(frozen=True)
class FeedbackFilters:
    resolved: bool | None = None
    skill: str | None = None
    author_id: uuid.UUID | None = None


# A feedback item as lists show it: its columns and its author's and resolver's public
# fields, read as plain rows (no ORM objects to build: a page holds hundreds of them).
Author = aliased(User, name="author")
Resolver = aliased(User, name="resolver")
_ITEM_COLUMNS = (
    Feedback.id,
    Feedback.clip_id,
    Feedback.parent_id,
    Feedback.body,
    Feedback.timestamp_ms,
    Feedback.end_ms,
    Feedback.skill,
    Feedback.annotation,
    Feedback.response_clip_id,
    # As text, NULL when empty (nearly always): decoding "[]" for every row of a page
    # costs more than anything else in it.
    func.nullif(cast(Feedback.mentions, Text), "[]").label("mentions"),
    Feedback.resolved_at,
    Feedback.edited_at,
    Feedback.deleted_at,
    Feedback.helpful_count,
    Feedback.created_at,
    Author.id.label("author_id"),
    Author.name.label("author_name"),
    Author.role.label("author_role"),
    Resolver.id.label("resolver_id"),
    Resolver.name.label("resolver_name"),
    Resolver.role.label("resolver_role"),
)
ItemRow = Row[Any]
ITEM_WIDTH = len(_ITEM_COLUMNS)


# Built once: statements are immutable, and constructing this one costs more than running it.
_ITEMS: Select[Any] = (
    select(*_ITEM_COLUMNS)
    .join(Author, Author.id == Feedback.author_id)
    .outerjoin(Resolver, Resolver.id == Feedback.resolved_by_id)
)


def _items(principal: Principal) -> Select[Any]:
    return _ITEMS.where(Feedback.org_id == principal.org_id)


@functools.cache
def _thread_page(
    resolved: bool | None, by_skill: bool, by_author: bool, after_cursor: bool
) -> Select[Any]:
    """The page statement for one combination of filters, built once with bind parameters
    (org_id, clip_id, viewer_id, skill, author_id and the keyset's): building it costs
    more than running it. The page's thread ids (a keyset page over ix_feedback_clip_roots),
    then every item that is one of them or replies to one, with the viewer's helpful mark."""
    roots = select(Feedback.id, Feedback.timestamp_ms, Feedback.created_at).where(
        Feedback.org_id == bindparam("org_id"),
        Feedback.clip_id == bindparam("clip_id"),
        Feedback.parent_id.is_(None),
    )
    if resolved is not None:
        is_resolved = Feedback.resolved_at.is_not(None)
        roots = roots.where(is_resolved if resolved else ~is_resolved)
    if by_skill:
        roots = roots.where(Feedback.skill == bindparam("skill"))
    if by_author:
        roots = roots.where(Feedback.author_id == bindparam("author_id"))
    page_ids = select(
        keyset_page_shape(roots, _THREAD_ORDER, after_cursor=after_cursor).subquery().c.id
    )
    # The threads and their replies: a UNION of two index lookups (an OR of the two
    # conditions would make PostgreSQL scan the whole table).
    thread_items = union_all(
        select(Feedback.id).where(Feedback.id.in_(page_ids)),
        select(Feedback.id).where(Feedback.parent_id.in_(page_ids)),
    )
    marked = aliased(FeedbackReaction, name="marked")
    return (
        _ITEMS.where(Feedback.org_id == bindparam("org_id"))
        .add_columns(marked.id.is_not(None).label("marked_by_me"))
        .outerjoin(
            marked,
            and_(
                marked.feedback_id == Feedback.id,
                marked.user_id == bindparam("viewer_id"),
                marked.kind == HELPFUL,
            ),
        )
        .where(Feedback.id.in_(thread_items))
    )


@dataclass
class Thread:
    root: ItemRow
    replies: list[ItemRow] = field(default_factory=list)


async def reacted_by(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these feedback items the caller marked helpful (one query for a page)."""
    if not ids:
        return set()
    rows = await session.scalars(
        select(FeedbackReaction.feedback_id).where(
            FeedbackReaction.org_id == principal.org_id,
            FeedbackReaction.user_id == principal.id,
            FeedbackReaction.kind == HELPFUL,
            FeedbackReaction.feedback_id.in_(list(ids)),
        )
    )
    return set(rows.all())


async def item_row(session: AsyncSession, principal: Principal, feedback_id: uuid.UUID) -> ItemRow:
    """One item as lists show it (to answer a change with it)."""
    row: ItemRow = (
        await session.execute(_items(principal).where(Feedback.id == feedback_id))
    ).one()
    return row


async def list_threads(
    session: AsyncSession,
    principal: Principal,
    clip_id: uuid.UUID,
    filters: FeedbackFilters,
    page: PageParams,
) -> tuple[list[Thread], set[uuid.UUID], str | None]:
    """One page of threads and all their replies in a single statement (`_thread_page`).
    Returns the threads in playback order, the ids the caller marked helpful, and the next
    cursor."""
    await ensure_visible(session, principal, clip_id)
    values: dict[str, Any] = {
        "org_id": principal.org_id,
        "clip_id": clip_id,
        "viewer_id": principal.id,
        "skill": filters.skill,
        "author_id": filters.author_id,
        **keyset_page_params(_THREAD_ORDER, page),
    }
    by_skill, by_author = filters.skill is not None, filters.author_id is not None
    shape = _thread_page(filters.resolved, by_skill, by_author, bool(page.cursor))
    # Through the connection: plain rows, without the ORM's per-row bookkeeping.
    rows = (await (await session.connection()).execute(shape, values)).all()
    ordered = sorted(
        (r for r in rows if r.parent_id is None),
        key=lambda r: (r.timestamp_ms, r.created_at, r.id),
    )
    kept, cursor = cut_page(ordered, _THREAD_ORDER, page)
    threads = {r.id: Thread(r) for r in kept}
    for reply in sorted(
        (r for r in rows if r.parent_id is not None), key=lambda r: (r.created_at, r.id)
    ):
        thread = threads.get(reply.parent_id)
        if thread is not None:  # not a reply to the look-ahead thread
            thread.replies.append(reply)
    mine = {r.id for r in rows if r.marked_by_me}
    return list(threads.values()), mine, cursor


async def get_feedback(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID
) -> tuple[Feedback, Clip]:
    """A feedback item on a clip the caller may see, with its clip; tombstones are gone."""
    row = (
        await session.execute(
            select(Feedback, Clip)
            .join(Clip, Clip.id == Feedback.clip_id)
            .where(
                Feedback.org_id == principal.org_id,
                Feedback.id == feedback_id,
                Feedback.deleted_at.is_(None),
                Clip.org_id == principal.org_id,
                visible_to(principal),
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound("Feedback not found.")
    return row[0], row[1]


async def update_feedback(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID, data: FeedbackUpdate
) -> Feedback:
    item, clip = await get_feedback(session, principal, feedback_id)
    if item.author_id != principal.id:
        raise Forbidden("Only the author may edit feedback.")
    changes = data.model_dump(exclude_unset=True)
    if "skill" in changes:
        await _check_skill(session, clip, data.skill)
        item.skill = data.skill
    if "body" in changes and data.body is not None:
        item.body = data.body
    if "annotation" in changes:
        item.annotation = data.annotation.model_dump(mode="json") if data.annotation else None
    if item.is_root and ("timestamp_ms" in changes or "end_ms" in changes):
        timestamp_ms = item.timestamp_ms if data.timestamp_ms is None else data.timestamp_ms
        end_ms = data.end_ms if "end_ms" in changes else item.end_ms
        _check_range(clip, timestamp_ms, end_ms)
        item.timestamp_ms, item.end_ms = timestamp_ms, end_ms
        # Replies sit where their thread sits.
        await session.execute(
            update(Feedback)
            .where(Feedback.parent_id == item.id)
            .values(timestamp_ms=timestamp_ms, end_ms=end_ms)
            .execution_options(synchronize_session=False)
        )
    now = utcnow()
    item.edited_at = now
    item.updated_at = now
    await session.flush()
    return item


async def _reply_count(session: AsyncSession, root_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count(Feedback.id)).where(Feedback.parent_id == root_id)
    )
    return int(count or 0)


async def _count_open(session: AsyncSession, clip_id: uuid.UUID, step: int) -> None:
    """Keep clips.open_feedback_count in step with the clip's unresolved threads."""
    await session.execute(
        update(Clip)
        .where(Clip.id == clip_id)
        .values(open_feedback_count=Clip.open_feedback_count + step)
        .execution_options(synchronize_session=False)
    )


async def delete_feedback(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID
) -> None:
    """A thread root with replies becomes a tombstone; anything else is removed (and a
    tombstone whose last reply goes is removed with it)."""
    item, _clip = await get_feedback(session, principal, feedback_id)
    if item.author_id != principal.id and not principal.has_role(*OVERSEERS):
        raise Forbidden("Only the author, coaches and admins may delete feedback.")
    if item.is_root and item.resolved_at is None:
        await _count_open(session, item.clip_id, -1)
    if item.is_root and await _reply_count(session, item.id) > 0:
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
        await session.execute(
            delete(Feedback)
            .where(
                Feedback.id == parent_id,
                Feedback.deleted_at.is_not(None),
                ~select(Feedback.id).where(Feedback.parent_id == parent_id).exists(),
            )
            .execution_options(synchronize_session=False)
        )


async def set_resolved(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID, resolved: bool
) -> Feedback:
    item, clip = await get_feedback(session, principal, feedback_id)
    if not item.is_root:
        raise Unprocessable("Only a thread (not a reply) can be resolved.", code="not_a_thread")
    allowed = {clip.owner_id, item.author_id}
    if principal.id not in allowed and not principal.has_role(*OVERSEERS):
        raise Forbidden("Only the clip's owner, the author, coaches and admins resolve feedback.")
    if resolved and item.resolved_at is None:
        item.resolved_at = utcnow()
        item.resolved_by_id = principal.id
        cause = Cause(
            org_id=clip.org_id,
            actor_id=principal.id,
            clip_id=clip.id,
            feedback_id=item.id,
            data={"clip_title": clip.title, "excerpt": item.body[:EXCERPT_CHARS]},
        )
        notify(session, cause, [(item.author_id, NotificationKind.feedback_resolved)])
        await _count_open(session, clip.id, -1)
    elif not resolved and item.resolved_at is not None:
        item.resolved_at = None
        item.resolved_by_id = None
        await _count_open(session, clip.id, +1)
    await session.flush()
    return item


async def set_helpful(
    session: AsyncSession, principal: Principal, feedback_id: uuid.UUID, helpful: bool
) -> tuple[Feedback, bool]:
    """Add or take back the caller's helpful mark; repeating either changes nothing. The
    item's helpful_count moves only when a mark was really added or removed."""
    item, _clip = await get_feedback(session, principal, feedback_id)
    if helpful:
        if item.author_id == principal.id:
            raise Forbidden("You cannot mark your own feedback as helpful.")
        insert: Any = (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        result = await session.execute(
            insert(FeedbackReaction)
            .values(
                id=uuid7(),
                org_id=item.org_id,
                feedback_id=item.id,
                user_id=principal.id,
                kind=HELPFUL,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["feedback_id", "user_id", "kind"])
        )
        step = 1
    else:
        result = await session.execute(
            delete(FeedbackReaction).where(
                FeedbackReaction.feedback_id == item.id,
                FeedbackReaction.user_id == principal.id,
                FeedbackReaction.kind == HELPFUL,
            )
        )
        step = -1
    if result.rowcount:  # type: ignore[attr-defined]
        await session.execute(
            update(Feedback)
            .where(Feedback.id == item.id)
            .values(helpful_count=Feedback.helpful_count + step)
            .execution_options(synchronize_session=False)
        )
        await session.refresh(item, ["helpful_count"])
    return item, helpful
