"""A pitch that finishes processing notifies its owner with the exemplars it links to."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.api import exemplar_clip
from tests.helpers.transcode import upload, wait_settled
from tests.media.conftest import Clips
from workers.runtime import Worker


async def test_ready_pitch_notifies_its_owner_with_links(
    app: Any,
    client: httpx.AsyncClient,
    make_org: Any,
    worker: Worker,
    media: Clips,
) -> None:
    org = await make_org()
    rep, top, coach = (
        await org.add_user("rep"), await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    exemplar = await exemplar_clip(
        app, client, top, coach, stage="contact_to_trial", skills=["discovery_questions"]
    )
    pitch = await upload(client, rep, media.landscape())
    not_a_pitch = await upload(client, top, media.landscape(), kind="exemplar")
    for clip_id, actor in ((pitch, rep), (not_a_pitch, top)):
        assert (await wait_settled(client, actor, clip_id))[-1]["status"] == "ready"

    # Without the speech analysis's own notification, which may arrive any time after ready.
    notes = [
        n
        for n in (await client.get("/v1/notifications", headers=rep.headers)).json()["items"]
        if n["kind"] != "pitch_analyzed"
    ]
    assert [(n["kind"], n["clip_id"], n["actor"]) for n in notes] == [("pitch_ready", pitch, None)]
    assert notes[0]["data"]["exemplars"] == [
        {
            "clip_id": exemplar,
            "title": "Discovery call with Initech",
            "source": "auto",
            "reason": "same stage: contact_to_trial; shares skills: discovery_questions",
        }
    ]
    assert (await client.get("/v1/notifications", headers=top.headers)).json()["items"] == []
