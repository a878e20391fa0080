"""A play token's re-check (``viewer_may_see``: a viewer known by id only) is the clip
visibility rule of app/clips/access.py, with the account's state: it agrees with the SQL
rule for requests (``is_visible``) and the in-memory one (``may_see``) on every case, refuses
deactivated users and other organizations, and an unbound token (no viewer) sees what every
member of the organization sees."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
from sqlalchemy import update

from app.clips.access import Viewer, is_visible, may_see, viewer_may_see, visibility_facts
from app.clips.models import Clip, ClipKind, ClipStatus, Visibility
from app.db import utcnow
from app.reviews.models import ReviewRequest, ReviewStatus
from app.tenancy import Principal
from app.users.models import User
from tests.helpers.sql_count import queries, statements_during


async def test_viewer_may_see_agrees_with_the_visibility_rule(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other_org = await make_org(), await make_org("Other")
    owner = await org.add_user("rep")
    viewers = [await org.add_user(role) for role in ("rep", "top_performer", "coach", "admin")]
    inactive = [await org.add_user(role) for role in ("rep", "coach")]
    stranger = await other_org.add_user("coach")
    org_id = uuid.UUID(org.org_id)
    # Every clip: private or shared, live or deleted, with review requests (none, pending,
    # completed, declined) for every viewer.
    clip_ids: list[uuid.UUID] = []
    statuses = (None, ReviewStatus.pending, ReviewStatus.completed, ReviewStatus.declined)
    async with app.state.sessionmaker.begin() as session:
        for visibility, deleted, status in itertools.product(Visibility, (False, True), statuses):
            clip = Clip(
                org_id=org_id, owner_id=uuid.UUID(owner.id), title="t", kind=ClipKind.pitch,
                stage="closing", filename="p.mp4", content_type="video/mp4", size_bytes=1,
                status=ClipStatus.ready, visibility=visibility, source_key="x",
                deleted_at=utcnow() if deleted else None,
            )  # fmt: skip
            session.add(clip)
            await session.flush()
            clip_ids.append(clip.id)
            if status is not None:
                session.add_all(
                    ReviewRequest(
                        org_id=org_id, clip_id=clip.id, requester_id=uuid.UUID(owner.id),
                        reviewer_id=uuid.UUID(viewer.id), status=status,
                    )
                    for viewer in [*viewers, *inactive]
                )  # fmt: skip
        await session.execute(
            update(User)
            .where(User.id.in_([uuid.UUID(u.id) for u in inactive]))
            .values(is_active=False)
        )

    async with app.state.sessionmaker() as session:
        facts = await visibility_facts(session, org_id, clip_ids)
        granted = 0
        for actor in [owner, *viewers, *inactive, stranger]:
            user = await session.get(User, uuid.UUID(actor.id))
            assert user is not None
            for clip_id in clip_ids:
                by_id = await viewer_may_see(session, user.id, clip_id)
                expected = user.is_active and await is_visible(
                    session, Principal(user=user), clip_id
                )
                in_memory = user.is_active and user.org_id == org_id
                in_memory = in_memory and may_see(facts[clip_id], Viewer.of(user))
                assert by_id == expected == in_memory, (actor.role, user.is_active, clip_id)
                granted += by_id
            if actor in inactive:
                # Not vacuous: the same user sees what the role allows once active again.
                active = Principal(user=user)
                assert any([await is_visible(session, active, c) for c in clip_ids])
        # An unknown user sees nothing; no viewer at all: what any member sees.
        for clip_id in clip_ids:
            assert not await viewer_may_see(session, uuid.uuid4(), clip_id)
            anyone = may_see(facts[clip_id], Viewer(uuid.uuid4(), overseer=False))
            assert await viewer_may_see(session, None, clip_id) == anyone
        assert 0 < granted < len(clip_ids) * 5
        # Two short reads (the account, then the clip) whatever the case.
        with statements_during(app) as statements:
            await viewer_may_see(session, uuid.UUID(viewers[0].id), clip_ids[0])
        assert len(queries(statements)) == 2
