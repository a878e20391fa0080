"""The clip lifecycle: its transition table, and each transition as one guarded UPDATE."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.clips import lifecycle
from app.clips.models import Clip, ClipStatus
from app.errors import Conflict
from app.jobs.kinds import TRANSCODE_CLIP
from app.jobs.models import Job
from app.uploads.models import Upload, UploadStatus
from tests.helpers.api import create_clip

S = ClipStatus


def test_every_status_has_a_row_and_end_states_lead_nowhere() -> None:
    assert set(lifecycle.TRANSITIONS) == set(ClipStatus)
    assert lifecycle.TRANSITIONS[S.ready] == frozenset()
    # Failed leads only back to awaiting a new upload (guarded: only when the upload ended).
    assert lifecycle.TRANSITIONS[S.failed] == {S.awaiting_upload}
    assert lifecycle.sources_of(S.awaiting_upload) == {S.awaiting_upload, S.failed}
    assert lifecycle.sources_of(S.processing) == {S.awaiting_upload}
    assert lifecycle.sources_of(S.ready) == {S.processing, S.viewable}
    assert S.ready not in lifecycle.sources_of(S.failed)


async def _clip(app: Any, client: httpx.AsyncClient, make_org: Any) -> uuid.UUID:
    org = await make_org()
    rep = await org.add_user("rep")
    return uuid.UUID((await create_clip(client, rep))["clip"]["id"])


async def _status(app: Any, clip_id: uuid.UUID) -> ClipStatus:
    async with app.state.sessionmaker() as session:
        status = await session.scalar(select(Clip.status).where(Clip.id == clip_id))
    assert status is not None
    return status


async def _end_uploads(session: Any, clip_id: uuid.UUID) -> None:
    await session.execute(
        update(Upload).where(Upload.clip_id == clip_id).values(status=UploadStatus.expired)
    )


async def test_an_illegal_transition_raises(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    clip_id = await _clip(app, client, make_org)
    async with app.state.sessionmaker.begin() as session:
        with pytest.raises(lifecycle.IllegalTransition):
            await lifecycle.publish(session, clip_id, S.failed, {}, app.state.settings)
    assert await _status(app, clip_id) == S.awaiting_upload


async def test_upload_completed_moves_to_processing_with_its_transcode_job_once(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    clip_id = await _clip(app, client, make_org)
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, clip_id)
        assert clip is not None
        await lifecycle.upload_completed(session, clip)
        assert clip.status == S.processing
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, clip_id)
        assert clip is not None
        with pytest.raises(Conflict):  # already processing: the guard refuses a second one
            await lifecycle.upload_completed(session, clip)
    async with app.state.sessionmaker() as session:
        jobs = (await session.scalars(select(Job).where(Job.kind == TRANSCODE_CLIP.name))).all()
    assert [job.payload["clip_id"] for job in jobs] == [str(clip_id)]


async def test_no_transition_leaves_an_end_state_or_touches_a_deleted_clip(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    settings = app.state.settings
    clip_id = await _clip(app, client, make_org)
    async with app.state.sessionmaker.begin() as session:
        # Not encoding yet: publishing and failing the transcode do nothing.
        assert not await lifecycle.publish(session, clip_id, S.ready, {}, settings)
        assert await lifecycle.processing_failed(session, [clip_id], "x", "y") == []
        # Its upload is still open: the clip does not fail for an upload that ended.
        assert not await lifecycle.upload_ended(session, clip_id, "upload_expired", "late")
        await _end_uploads(session, clip_id)
        assert await lifecycle.upload_ended(session, clip_id, "upload_expired", "late")
        # Failed is final.
        assert not await lifecycle.upload_ended(session, clip_id, "upload_aborted", "again")
    assert await _status(app, clip_id) == S.failed

    other = await _clip(app, client, make_org)
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, other)
        assert clip is not None
        await lifecycle.delete(session, clip)
        assert not await lifecycle.upload_ended(session, other, "upload_expired", "late")
    assert await _status(app, other) == S.awaiting_upload


async def test_only_a_clip_whose_upload_ended_may_await_a_new_one(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    ended, encoded, deleted = [await _clip(app, client, make_org) for _ in range(3)]
    async with app.state.sessionmaker.begin() as session:
        with pytest.raises(lifecycle.IllegalTransition):  # not an upload's end
            await lifecycle.upload_ended(session, ended, "transcode_failed", "no")
        for clip_id in (ended, deleted):
            await _end_uploads(session, clip_id)
            assert await lifecycle.upload_ended(session, clip_id, "upload_aborted", "aborted")
        clip = await session.get(Clip, encoded)
        assert clip is not None
        await lifecycle.upload_completed(session, clip)
        assert await lifecycle.processing_failed(session, [encoded], "transcode_failed", "bad")
        gone = await session.get(Clip, deleted)
        assert gone is not None
        await lifecycle.delete(session, gone)

    async with app.state.sessionmaker.begin() as session:
        for clip_id in (encoded, deleted):
            clip = await session.get(Clip, clip_id)
            assert clip is not None
            assert not await lifecycle.upload_restarted(session, clip)
        clip = await session.get(Clip, ended)
        assert clip is not None
        assert await lifecycle.upload_restarted(session, clip)
        # The loaded object follows the row: awaiting again, the upload's error cleared.
        assert (clip.status, clip.error_code, clip.error_message) == (S.awaiting_upload, None, None)
    assert await _status(app, ended) == S.awaiting_upload
    assert await _status(app, encoded) == S.failed
    assert await _status(app, deleted) == S.failed
