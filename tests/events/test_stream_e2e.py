"""A real upload, transcoded by a real worker, followed on the live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import running_worker
from tests.events.sse import open_stream, serving
from tests.helpers.transcode import transcode_settings, upload, wait_settled
from tests.media.conftest import Clips
from workers.runtime import Worker

# As tests/workers/test_progressive.py: 6 s segments, read at 2x real time, so the clip is
# viewable for a few seconds before it is ready.
SECONDS = 14
READRATE = 2


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("stream-clips"))


@pytest.fixture
def settings(make_settings: Any, request: pytest.FixtureRequest) -> Any:
    return transcode_settings(
        make_settings,
        "local",
        request,
        transcode_readrate=READRATE,
        transcode_stall_free_start=False,  # the mechanics of early playback, on any machine
    )


@pytest.fixture
async def worker(app: Any) -> AsyncIterator[Worker]:
    async with running_worker(app, concurrency=1) as w:
        yield w


async def test_an_upload_is_uploaded_then_viewable_then_ready_on_the_stream(
    app: Any, client: httpx.AsyncClient, make_org: Any, worker: Worker, media: Clips
) -> None:
    org = await make_org()
    rep, top = await org.add_user("rep"), await org.add_user("top_performer")
    source = media.small(SECONDS)
    async with (
        serving(app) as base,
        open_stream(base, rep.access_token) as owner_stream,
        open_stream(base, top.access_token) as colleague_stream,
    ):
        clip_id = await upload(client, rep, source)
        assert (await wait_settled(client, rep, clip_id))[-1]["status"] == "ready"

        async def until_ready(stream: Any) -> list[Any]:
            seen: list[Any] = []
            while not any(m.event == "clip.ready" for m in seen):
                message = await stream.next(timeout=30)
                assert message is not None, seen
                seen.append(message)
            return seen

        for stream in (owner_stream, colleague_stream):
            seen = [
                (m.event, m.json()["data"]["status"], m.seq)
                for m in await until_ready(stream)
                if m.event.startswith("clip.") and m.json()["data"]["id"] == clip_id
            ]
            assert [(kind, status) for kind, status, _ in seen] == [
                ("clip.uploaded", "processing"),
                ("clip.viewable", "viewable"),
                ("clip.ready", "ready"),
            ]
            seqs = [seq for _, _, seq in seen]
            assert seqs == sorted(seqs)

        # The owner's "your pitch is ready" is a notification event for the owner alone:
        # written with clip.ready, it follows it; the colleague gets the next event instead.
        note = await owner_stream.next()
        assert note is not None and note.event == "notification.created"
        assert (note.json()["data"]["kind"], note.json()["data"]["clip_id"]) == (
            "pitch_ready",
            clip_id,
        )
        r = await client.delete(f"/v1/clips/{clip_id}", headers=rep.headers)
        assert r.status_code == 204, r.text
        after = await colleague_stream.next()
        assert after is not None and after.event == "clip.deleted"
