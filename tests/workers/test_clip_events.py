"""A clip's lifecycle as events, and what its owner hears when a pitch fails."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.transcode import upload, wait_settled
from tests.media.conftest import Clips
from workers.runtime import Worker

# The lifecycle's own events (a ready clip's speech analysis adds clip.speech_analyzed later).
LIFECYCLE = "clip.uploaded,clip.viewable,clip.ready,clip.failed,clip.deleted"


async def clip_events(client: httpx.AsyncClient, admin: Any, clip_id: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/events", params={"types": LIFECYCLE}, headers=admin.headers)
    return [e for e in r.json()["items"] if e["data"]["id"] == clip_id]


async def test_an_upload_is_uploaded_then_viewable_then_ready_in_order(
    client: httpx.AsyncClient, make_org: Any, worker: Worker, media: Clips
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await upload(client, rep, media.landscape())
    assert (await wait_settled(client, rep, clip_id))[-1]["status"] == "ready"
    seen = await clip_events(client, org.admin, clip_id)
    kinds = [e["type"] for e in seen]
    # viewable is announced once, when the first segments play (a short clip may go
    # straight to ready); ready comes last, and each event shows the clip at that moment.
    assert kinds in (
        ["clip.uploaded", "clip.viewable", "clip.ready"],
        ["clip.uploaded", "clip.ready"],
    )
    expected = ["processing", *(["viewable"] if len(kinds) == 3 else []), "ready"]
    assert [e["data"]["status"] for e in seen] == expected
    ready = seen[-1]["data"]
    assert ready["owner"]["id"] == rep.id and ready["duration_ms"] > 0
    assert "upload" not in ready and "my_progress" not in ready and ready["poster_url"] is None


async def test_a_failed_pitch_is_an_event_and_tells_its_owner_why(
    client: httpx.AsyncClient, make_org: Any, worker: Worker, media: Clips
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    clip_id = await upload(client, rep, media.text())
    final = (await wait_settled(client, rep, clip_id))[-1]
    assert final["status"] == "failed"
    seen = await clip_events(client, org.admin, clip_id)
    assert [e["type"] for e in seen] == ["clip.uploaded", "clip.failed"]
    assert seen[-1]["data"]["error"]["code"] == final["error"]["code"] == "invalid_media"
    notes = (await client.get("/v1/notifications", headers=rep.headers)).json()["items"]
    assert [(n["kind"], n["clip_id"]) for n in notes] == [("pitch_failed", clip_id)]
    assert notes[0]["data"]["error"]["code"] == "invalid_media"
    assert notes[0]["data"]["error"]["message"]
