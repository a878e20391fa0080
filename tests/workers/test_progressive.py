"""A clip plays while it is encoded: once its first segments are stored it is `viewable`,
its playback URLs serve growing EVENT playlists whose every segment is fetchable, and the
same URLs serve the finished playlists (ENDLIST) once it is `ready`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import event, select

from app.clips.models import Clip
from app.jobs.models import Job, JobStatus
from tests.helpers.transcode import get_clip, transcode_settings, upload
from tests.helpers.waiting import eventually
from tests.media.conftest import Clips, ffmpeg
from workers.runtime import Worker

SECONDS = 14  # 6 s segments: two whole ones are published before the last one is encoded
# The source is read at 2x real time: ~7 s of encoding, and segments end ~3 s apart, so the
# worker's once-a-second look sees them even on a loaded machine.
READRATE = 2


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("progressive-clips"))


@pytest.fixture
def settings(make_settings: Any, backend: str, request: pytest.FixtureRequest) -> Any:
    return transcode_settings(
        make_settings,
        backend,
        request,
        transcode_readrate=READRATE,
        transcode_stall_free_start=False,  # the mechanics of early playback, on any machine
    )


async def fetch(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """Playback URLs are absolute: this API's own (local storage) or presigned S3 ones."""
    parts = urlsplit(url)
    if parts.netloc == urlsplit(str(client.base_url)).netloc:
        r = await client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
        if r.status_code == 302:  # a segment URL redirects to a URL minted per fetch
            return await fetch(client, r.headers["location"])
        return r
    async with httpx.AsyncClient() as outside:
        return await outside.get(url)


async def wait_while(
    client: httpx.AsyncClient, actor: Any, clip_id: str, status: str, timeout_s: float = 90
) -> dict[str, Any]:
    return await eventually(
        lambda: get_clip(client, actor, clip_id),
        until=lambda clip: clip["status"] != status,
        timeout=timeout_s,
        what=f"clip {clip_id} to leave {status}",
    )


def uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


async def test_clip_plays_while_encoded_then_finished(
    client: httpx.AsyncClient, make_org: Any, worker: Worker, media: Clips
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await upload(client, rep, media.small(SECONDS))

    clip = await wait_while(client, rep, clip_id, "processing")
    assert clip["status"] == "viewable", clip
    assert clip["progress"] < 1.0
    # Probe facts come with "viewable": timestamped feedback needs the duration at once.
    assert abs(clip["duration_ms"] - SECONDS * 1000) <= 100
    assert (clip["width"], clip["height"]) == (320, 180)

    r = await client.get(f"/v1/clips/{clip_id}/playback", headers=rep.headers)
    assert r.status_code == 200, r.text
    urls = r.json()
    assert urls["mp4_url"] is None and urls["storyboard_url"] is None  # only when ready
    assert urls["poster_url"] is not None  # from 10% in: it came with the first segment
    master = await fetch(client, urls["hls_url"])
    assert master.status_code == 200
    (variant_url,) = uris(master.text)
    growing = await fetch(client, variant_url)
    assert growing.status_code == 200
    assert growing.headers["cache-control"] == "private, max-age=1"  # players reload it
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing.text
    assert "#EXT-X-START:TIME-OFFSET=0" in growing.text
    assert "#EXT-X-ENDLIST" not in growing.text
    published = uris(growing.text)
    assert 1 <= len(published) <= 2
    for url in published:  # every listed segment is already stored
        segment = await fetch(client, url)
        assert segment.status_code == 200 and len(segment.content) > 0

    clip = await wait_while(client, rep, clip_id, "viewable")
    assert clip["status"] == "ready", clip

    # The same signed URLs (same media version), now the finished playlist: nothing stale.
    done = await fetch(client, variant_url)
    assert done.status_code == 200
    assert done.text.startswith(growing.text.split("#EXT-X-MAP")[0])  # the same header
    assert done.text.rstrip().endswith("#EXT-X-ENDLIST")
    assert len(uris(done.text)) == 3
    assert int(done.headers["cache-control"].rsplit("=", 1)[1]) > 60
    r = await client.get(f"/v1/clips/{clip_id}/playback", headers=rep.headers)
    assert r.json()["mp4_url"] is not None and r.json()["storyboard_url"] is not None


@contextmanager
def clip_statuses_written(app: Any) -> Iterator[list[str]]:
    """Every clip status the app's engine writes inside the block: a state that lasts less
    than a poll (a short `viewable` on a loaded machine) is seen all the same."""
    written: list[str] = []

    def record(
        _conn: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: bool
    ) -> None:
        compiled = context.compiled
        if compiled is None or not compiled.isupdate or compiled.statement.table.name != "clips":
            return
        for values in context.compiled_parameters:  # by bind name: SET status is "status"
            if "status" in values:
                written.append(str(getattr(values["status"], "value", values["status"])))

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield written
    finally:
        event.remove(engine, "before_cursor_execute", record)


def cut_short(media: Clips, tmp_path: Path) -> Path:
    """Index in front, the media cut after ~11 of 14 s: probes fine, decodes ~11 s (one
    whole segment is published before the end shows it short)."""
    whole = tmp_path / "whole.mp4"
    ffmpeg(
        "-i", str(media.small(SECONDS)), "-c", "copy", "-movflags", "+faststart", str(whole)
    )  # fmt: skip
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 80 // 100])
    return cut


async def test_a_clip_found_damaged_after_it_played_fails_and_keeps_nothing(
    app: Any,
    client: httpx.AsyncClient,
    make_org: Any,
    worker: Worker,
    media: Clips,
    tmp_path: Path,
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    with clip_statuses_written(app) as written:
        clip_id = await upload(client, rep, cut_short(media, tmp_path))
        clip = await eventually(
            lambda: get_clip(client, rep, clip_id),
            until=lambda clip: clip["status"] not in ("processing", "viewable"),
            timeout=90,
            what=f"clip {clip_id} to end processing",
        )
    assert "viewable" in written, written  # its first segment was fine
    assert written.index("viewable") < written.index("failed"), written
    assert clip["status"] == "failed", clip
    assert clip["error"]["code"] == "invalid_media"
    assert "truncated" in clip["error"]["message"]
    assert clip["renditions"] == []
    r = await client.get(f"/v1/clips/{clip_id}/playback", headers=rep.headers)
    assert r.status_code == 409
    async with app.state.sessionmaker() as session:
        row = await session.get(Clip, uuid.UUID(clip_id))
        assert row is not None and row.media is None
        media_root = f"{row.media_prefix}media/"

    # The clip is failed first (players stop), then its files are deleted: wait for the job.
    async def transcode_job() -> Job:
        async with app.state.sessionmaker() as session:
            jobs = (await session.scalars(select(Job).where(Job.kind == "transcode_clip"))).all()
        (job,) = [j for j in jobs if j.payload["clip_id"] == clip_id]
        return job

    await eventually(
        transcode_job,
        until=lambda job: job.status == JobStatus.failed,
        timeout=60,
        what="the transcode job to be recorded as failed",
    )
    # What was published while it played is gone (nothing was left to delete here).
    assert await app.state.storage.delete_prefix(media_root) == 0
