"""The clip visibility rule has one owner (app/clips/access.py) and two forms: SQL
(``visible_to``, ``is_visible``) for requests, and ``may_see`` on ``visibility_facts`` for the
live stream's fan-out. They must agree on every case."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx

from app.clips.access import Viewer, is_visible, may_see, visibility_facts
from app.clips.models import Clip, ClipKind, ClipStatus, Visibility
from app.db import utcnow
from app.reviews.models import ReviewRequest, ReviewStatus
from app.tenancy import Principal
from app.users.models import User
from tests.helpers.sql_count import queries, statements_during


async def test_may_see_agrees_with_the_sql_rule_on_every_case(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other_org = await make_org(), await make_org("Other")
    owner = await org.add_user("rep")
    viewers = [await org.add_user(role) for role in ("rep", "top_performer", "coach", "admin")]
    stranger = await other_org.add_user("coach")
    org_id = uuid.UUID(org.org_id)
    # Every clip: private or shared, live or deleted, with the viewers' review requests
    # (none, pending, completed, declined), for each viewer.
    clip_ids: list[uuid.UUID] = []
    requests: list[ReviewRequest] = []
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
                for viewer in viewers:
                    requests.append(
                        ReviewRequest(
                            org_id=org_id, clip_id=clip.id, requester_id=uuid.UUID(owner.id),
                            reviewer_id=uuid.UUID(viewer.id), status=status,
                        )
                    )  # fmt: skip
        session.add_all(requests)

    async with app.state.sessionmaker() as session:
        with statements_during(app) as statements:
            facts = await visibility_facts(session, org_id, clip_ids)
        assert len(queries(statements)) == 2  # clips, then the private ones' reviewers
        # Another organization's clips are not there to judge.
        assert await visibility_facts(session, uuid.UUID(other_org.org_id), clip_ids) == {}
        checked = 0
        for actor in [owner, *viewers, stranger]:
            user = await session.get(User, uuid.UUID(actor.id))
            assert user is not None
            for clip_id in clip_ids:
                in_sql = await is_visible(session, Principal(user=user), clip_id)
                in_memory = clip_id in facts and user.org_id == org_id
                in_memory = in_memory and may_see(facts[clip_id], Viewer.of(user))
                assert in_sql == in_memory, (actor.role, clip_id)
                checked += in_sql
    # Not vacuous: some of each.
    assert 0 < checked < len(clip_ids) * 6
