"""Feedback's tables, read and written for one organization.

Every statement starts scoped to the repository's organization: from
:meth:`TenantRepository.select` / :meth:`where_in_org`, or, for the statements built once at
import (the feedback page: building them costs more than running them), from
:func:`app.tenancy.in_org_param` and run with the repository's ``org_id``. Other domains
(the prep kit, the skill profile, exemplar statistics) read feedback only through here.

Lists read plain rows, not ORM objects (a page holds hundreds of items), and turn each into
a typed :class:`FeedbackItem` in one place (:func:`_items`): a NamedTuple built from the
row's values by position, which costs next to nothing.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.clips.access import visible_to
from app.clips.models import Clip, ClipKind
from app.db import utcnow, uuid7
from app.feedback.models import Feedback, FeedbackReaction
from app.pagination import PageParams, SortKey, keyset_page_params, keyset_page_shape
from app.tenancy import Principal, TenantRepository, in_org_param
from app.users.models import Role, User

HELPFUL = "helpful"

THREAD_ORDER = (
    SortKey(Feedback.timestamp_ms),
    SortKey(Feedback.created_at),
    SortKey(Feedback.id),
)


class FeedbackItem(NamedTuple):
    """A feedback item as lists show it: its columns, its author's and resolver's public
    fields, and whether the viewer marked it helpful. Field order is `_ITEM_COLUMNS`'."""

    id: uuid.UUID
    clip_id: uuid.UUID
    parent_id: uuid.UUID | None
    body: str
    timestamp_ms: int
    end_ms: int | None
    skill: str | None
    annotation: dict[str, Any] | None
    response_clip_id: uuid.UUID | None
    mentions_json: str | None  # the JSON text of the mentions, None when there are none
    resolved_at: datetime | None
    edited_at: datetime | None
    deleted_at: datetime | None
    helpful_count: int
    created_at: datetime
    author_id: uuid.UUID
    author_name: str
    author_role: Role
    resolver_id: uuid.UUID | None
    resolver_name: str | None
    resolver_role: Role | None
    reacted_by_me: bool


class FeedbackTip(NamedTuple):
    """What the prep kit shows of a feedback item (a tip or an open thread)."""

    id: uuid.UUID
    clip_id: uuid.UUID
    timestamp_ms: int
    end_ms: int | None
    skill: str | None
    body: str
    helpful_count: int
    resolved_at: datetime | None
    created_at: datetime
    clip_title: str
    author_name: str


class SkillTally(NamedTuple):
    stage: str
    skill: str
    resolved: bool
    threads: int


class SkillNote(NamedTuple):
    stage: str
    skill: str
    created_at: datetime


# --- the feedback page: statements built once, with the org as a bind parameter ------------

Author = aliased(User, name="author")
Resolver = aliased(User, name="resolver")
_Marked = aliased(FeedbackReaction, name="marked")
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
    _Marked.id.is_not(None).label("marked_by_me"),
)
assert len(_ITEM_COLUMNS) == len(FeedbackItem._fields)

# Items of the org (bind parameter org_id) with the viewer's (viewer_id) helpful mark.
_ITEMS: Select[Any] = (
    select(*_ITEM_COLUMNS)
    .join(Author, Author.id == Feedback.author_id)
    .outerjoin(Resolver, Resolver.id == Feedback.resolved_by_id)
    .outerjoin(
        _Marked,
        and_(
            _Marked.feedback_id == Feedback.id,
            _Marked.user_id == bindparam("viewer_id"),
            _Marked.kind == HELPFUL,
        ),
    )
    .where(in_org_param(Feedback))
)
_ONE_ITEM = _ITEMS.where(Feedback.id == bindparam("feedback_id"))


@functools.cache
def _thread_page(
    resolved: bool | None, by_skill: bool, by_author: bool, after_cursor: bool
) -> Select[Any]:
    """The page statement for one combination of filters, built once with bind parameters
    (org_id, clip_id, viewer_id, skill, author_id and the keyset's): building it costs
    more than running it. The page's thread ids (a keyset page over ix_feedback_clip_roots),
    then every item that is one of them or replies to one, with the viewer's helpful mark."""
    roots = select(Feedback.id, Feedback.timestamp_ms, Feedback.created_at).where(
        in_org_param(Feedback),
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
        keyset_page_shape(roots, THREAD_ORDER, after_cursor=after_cursor).subquery().c.id
    )
    # The threads and their replies: a UNION of two index lookups (an OR of the two
    # conditions would make PostgreSQL scan the whole table).
    thread_items = union_all(
        select(Feedback.id).where(Feedback.id.in_(page_ids)),
        select(Feedback.id).where(Feedback.parent_id.in_(page_ids)),
    )
    return _ITEMS.where(Feedback.id.in_(thread_items))


_new = tuple.__new__


def _items(rows: Iterable[Any]) -> list[FeedbackItem]:
    """The one place rows of `_ITEM_COLUMNS` become typed items (by position: cheap)."""
    return [_new(FeedbackItem, row) for row in rows]


# --- the prep kit's rows ---------------------------------------------------------------------


def _tip_rows() -> Select[*tuple[Any, ...]]:
    """What a tip or an open item shows, as plain columns (`FeedbackTip`'s order)."""
    return (
        select(
            Feedback.id,
            Feedback.clip_id,
            Feedback.timestamp_ms,
            Feedback.end_ms,
            Feedback.skill,
            Feedback.body,
            Feedback.helpful_count,
            Feedback.resolved_at,
            Feedback.created_at,
            Clip.title.label("clip_title"),
            Author.name.label("author_name"),
        )
        .join(Clip, Clip.id == Feedback.clip_id)
        .join(Author, Author.id == Feedback.author_id)
    )


class FeedbackRepository(TenantRepository[Feedback]):
    model = Feedback

    # --- items as lists show them ---

    async def thread_page_items(
        self,
        *,
        clip_id: uuid.UUID,
        viewer_id: uuid.UUID,
        resolved: bool | None,
        skill: str | None,
        author_id: uuid.UUID | None,
        page: PageParams,
    ) -> list[FeedbackItem]:
        """The items of one page of a clip's threads (roots, one look-ahead root, and their
        replies), unordered: one statement."""
        by_skill, by_author = skill is not None, author_id is not None
        shape = _thread_page(resolved, by_skill, by_author, bool(page.cursor))
        values = {
            "org_id": self.org_id,
            "clip_id": clip_id,
            "viewer_id": viewer_id,
            "skill": skill,
            "author_id": author_id,
            **keyset_page_params(THREAD_ORDER, page),
        }
        # Through the connection: plain rows, without the ORM's per-row bookkeeping.
        result = await (await self.session.connection()).execute(shape, values)
        return _items(result)

    async def item(self, feedback_id: uuid.UUID, viewer_id: uuid.UUID) -> FeedbackItem:
        """One item as lists show it (to answer a change with it)."""
        values = {"org_id": self.org_id, "feedback_id": feedback_id, "viewer_id": viewer_id}
        return _items([(await self.session.execute(_ONE_ITEM, values)).one()])[0]

    async def thread_items(
        self, principal: Principal, feedback_id: uuid.UUID
    ) -> list[FeedbackItem]:
        """The thread holding ``feedback_id`` (the item itself when it is a thread, else its
        thread) with all its replies, unordered, as the clip's feedback list shows them:
        tombstones included, nothing when the caller may not see the clip. One statement."""
        root_id = (
            select(func.coalesce(Feedback.parent_id, Feedback.id))
            .join(Clip, Clip.id == Feedback.clip_id)
            .where(self.where_in_org(Clip), Feedback.id == feedback_id, visible_to(principal))
            .correlate(None)
            .scalar_subquery()
        )
        # A UNION of two index lookups, as for a page of threads.
        thread = union_all(
            select(Feedback.id).where(Feedback.id == root_id),
            select(Feedback.id).where(Feedback.parent_id == root_id),
        )
        values = {"org_id": self.org_id, "viewer_id": principal.id}
        result = await self.session.execute(_ITEMS.where(Feedback.id.in_(thread)), values)
        return _items(result)

    # --- single items ---

    async def on_clip(self, clip_id: uuid.UUID, feedback_id: uuid.UUID) -> Feedback | None:
        found: Feedback | None = await self.session.scalar(
            self.select().where(Feedback.clip_id == clip_id, Feedback.id == feedback_id)
        )
        return found

    async def visible(
        self, principal: Principal, feedback_id: uuid.UUID
    ) -> tuple[Feedback, Clip] | None:
        """A live (not tombstoned) item on a clip the caller may see, with its clip."""
        row = (
            await self.session.execute(
                select(Feedback, Clip)
                .join(Clip, Clip.id == Feedback.clip_id)
                .where(
                    self.where_in_org(Clip),
                    Feedback.id == feedback_id,
                    Feedback.deleted_at.is_(None),
                    visible_to(principal),
                )
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def thread_authors(self, root_id: uuid.UUID) -> list[uuid.UUID]:
        """Who wrote the thread or a reply to it."""
        rows = await self.session.scalars(
            self.select(Feedback.author_id)
            .where((Feedback.id == root_id) | (Feedback.parent_id == root_id))
            .distinct()
        )
        return list(rows.all())

    async def reply_count(self, root_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            self.select(func.count(Feedback.id)).where(Feedback.parent_id == root_id)
        )
        return int(count or 0)

    # --- writes ---

    async def move_replies(self, root_id: uuid.UUID, timestamp_ms: int, end_ms: int | None) -> None:
        """Replies sit where their thread sits."""
        await self.session.execute(
            update(Feedback)
            .where(self.where_in_org(), Feedback.parent_id == root_id)
            .values(timestamp_ms=timestamp_ms, end_ms=end_ms)
            .execution_options(synchronize_session=False)
        )

    async def delete_empty_tombstone(self, root_id: uuid.UUID) -> None:
        """Remove a tombstoned thread root once it has no replies left."""
        await self.session.execute(
            delete(Feedback)
            .where(
                self.where_in_org(),
                Feedback.id == root_id,
                Feedback.deleted_at.is_not(None),
                ~select(Feedback.id).where(Feedback.parent_id == root_id).exists(),
            )
            .execution_options(synchronize_session=False)
        )

    async def set_helpful_mark(self, item: Feedback, user_id: uuid.UUID, helpful: bool) -> bool:
        """Add or remove the user's helpful mark; whether one was really added or removed
        (the item's helpful_count follows, and is refreshed on ``item``)."""
        if helpful:
            insert: Any = (
                postgresql.insert
                if self.session.get_bind().dialect.name == "postgresql"
                else sqlite.insert
            )
            result = await self.session.execute(
                insert(FeedbackReaction)
                .values(
                    id=uuid7(),
                    org_id=self.org_id,
                    feedback_id=item.id,
                    user_id=user_id,
                    kind=HELPFUL,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["feedback_id", "user_id", "kind"])
            )
        else:
            result = await self.session.execute(
                delete(FeedbackReaction).where(
                    self.scoped(FeedbackReaction),
                    FeedbackReaction.feedback_id == item.id,
                    FeedbackReaction.user_id == user_id,
                    FeedbackReaction.kind == HELPFUL,
                )
            )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        await self.session.execute(
            update(Feedback)
            .where(self.where_in_org(), Feedback.id == item.id)
            .values(helpful_count=Feedback.helpful_count + (1 if helpful else -1))
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(item, ["helpful_count"])
        return True

    async def set_resolution(self, item: Feedback, resolved_by: uuid.UUID | None) -> bool:
        """Resolve the thread (``resolved_by`` set) or reopen it (None) with one guarded
        UPDATE; False when it already was so. Two concurrent resolves of one thread cannot
        both see it open, so the clip's open count moves once."""
        now = utcnow() if resolved_by is not None else None
        was_open = resolved_by is not None
        result = await self.session.execute(
            update(Feedback)
            .where(
                self.where_in_org(),
                Feedback.id == item.id,
                Feedback.resolved_at.is_(None) if was_open else Feedback.resolved_at.is_not(None),
            )
            .values(resolved_at=now, resolved_by_id=resolved_by)
            .execution_options(synchronize_session=False)
        )
        await self.session.refresh(item, ["resolved_at", "resolved_by_id"])
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- for other domains: the prep kit ---

    async def tips(self, principal: Principal, stage: str, limit: int) -> list[FeedbackTip]:
        """The most helpful live feedback on the stage's pitches and exemplars the caller
        may see."""
        rows = await self.session.execute(
            _tip_rows()
            .where(
                self.where_in_org(Clip),
                Clip.stage == stage,
                Clip.kind.in_((ClipKind.pitch, ClipKind.exemplar)),
                visible_to(principal),
                Feedback.deleted_at.is_(None),
            )
            .order_by(Feedback.helpful_count.desc(), Feedback.created_at.desc(), Feedback.id.desc())
            .limit(limit)
        )
        return [_new(FeedbackTip, row) for row in rows]

    async def newest_open_on_clips_of(
        self, owner_id: uuid.UUID, stage: str, limit: int
    ) -> list[FeedbackTip]:
        """The newest unresolved threads on the owner's live clips of a stage."""
        rows = await self.session.execute(
            _tip_rows()
            .where(Feedback.id.in_(self._newest_open(owner_id, stage, limit)))
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        )
        return [_new(FeedbackTip, row) for row in rows]

    def _newest_open(self, owner_id: uuid.UUID, stage: str, limit: int) -> Select[Any]:
        """Ids of the newest unresolved threads on the owner's clips of a stage.

        On PostgreSQL: the newest ``limit`` of each clip (a LATERAL walk down the partial
        index ix_feedback_open_roots), then the newest overall, so the cost follows the
        number of the owner's clips, not of their open feedback. SQLite has no LATERAL; the
        plain form is fine at the sizes it serves.
        """
        open_root = (
            self.where_in_org(),
            Feedback.parent_id.is_(None),
            Feedback.deleted_at.is_(None),
            Feedback.resolved_at.is_(None),
        )
        mine = (
            self.scoped(Clip),
            Clip.owner_id == owner_id,
            Clip.deleted_at.is_(None),
            Clip.stage == stage,
            Clip.open_feedback_count > 0,
        )
        if self.session.get_bind().dialect.name != "postgresql":
            return (
                select(Feedback.id)
                .join(Clip, Clip.id == Feedback.clip_id)
                .where(*open_root, *mine)
                .order_by(Feedback.created_at.desc(), Feedback.id.desc())
                .limit(limit)
            )
        per_clip = (
            select(Feedback.id, Feedback.created_at)
            .where(Feedback.clip_id == Clip.id, *open_root)
            .order_by(Feedback.created_at.desc(), Feedback.id.desc())
            .limit(limit)
            .lateral("per_clip")
        )
        return (
            select(per_clip.c.id)
            .select_from(Clip)
            .join(per_clip, true())
            .where(*mine)
            .order_by(per_clip.c.created_at.desc(), per_clip.c.id.desc())
            .limit(limit)
        )

    # --- for other domains: the skill profile ---

    def _tagged_threads(self, owner_id: uuid.UUID) -> Select[*tuple[Any, ...]]:
        """Threads tagged with a skill on the owner's live clips; tombstones excluded."""
        return (
            select(Clip.stage, Feedback.skill)
            .join(Clip, Clip.id == Feedback.clip_id)
            .where(
                self.where_in_org(Clip),
                Clip.owner_id == owner_id,
                Clip.deleted_at.is_(None),
                Feedback.parent_id.is_(None),
                Feedback.deleted_at.is_(None),
                Feedback.skill.is_not(None),
            )
        )

    async def skill_tallies(self, owner_id: uuid.UUID) -> list[SkillTally]:
        """Open and resolved tagged threads on the owner's clips, per stage and skill."""
        resolved = Feedback.resolved_at.is_not(None)
        rows = await self.session.execute(
            self._tagged_threads(owner_id)
            .add_columns(resolved.label("resolved"), func.count(Feedback.id))
            .group_by(Clip.stage, Feedback.skill, resolved)
        )
        return [SkillTally(s, k, bool(r), int(n)) for s, k, r, n in rows]

    async def skill_notes_since(self, owner_id: uuid.UUID, since: datetime) -> list[SkillNote]:
        """When each tagged thread on the owner's clips was written, since ``since``."""
        rows = await self.session.execute(
            self._tagged_threads(owner_id)
            .add_columns(Feedback.created_at)
            .where(Feedback.created_at >= since)
        )
        return [_new(SkillNote, row) for row in rows]


# --- for other domains: exemplar statistics (a maintenance job over every org) -------------


async def helpful_by_clip(
    session: AsyncSession, clip_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The helpful marks of each clip's live feedback. Scoped by the clips given (the
    caller's own rows), not by an organization: exemplar statistics refresh every org."""
    rows = await session.execute(
        select(Feedback.clip_id, func.sum(Feedback.helpful_count))
        .where(Feedback.clip_id.in_(list(clip_ids)), Feedback.deleted_at.is_(None))
        .group_by(Feedback.clip_id)
    )
    return {clip_id: int(total or 0) for clip_id, total in rows}
