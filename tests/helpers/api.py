"""API helpers shared by test modules: clips (created, made playable), exemplars, reviews."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import update

from app.clips.models import Clip, ClipStatus

DURATION_MS = 10_000


def clip_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Discovery call with Initech",
        "description": "Second call; pricing objection at the end",
        "kind": "pitch",
        "stage": "contact_to_trial",
        "skills": ["discovery_questions"],
        "filename": "call.mp4",
        "content_type": "video/mp4",
        "size_bytes": 1000,
    }
    body.update(overrides)
    return body


async def create_clip(client: httpx.AsyncClient, actor: Any, **overrides: Any) -> dict[str, Any]:
    r = await client.post("/v1/clips", json=clip_body(**overrides), headers=actor.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def source_key(app: Any, clip_id: str) -> str:
    """Where the clip's uploaded source is stored."""
    async with app.state.sessionmaker() as session:
        clip = await session.get(Clip, uuid.UUID(clip_id))
    assert clip is not None
    return clip.source_key


async def playable_clip(app: Any, client: httpx.AsyncClient, actor: Any, **extra: Any) -> str:
    clip_id: str = (await create_clip(client, actor, **extra))["clip"]["id"]
    media = {
        "version": "1-1",
        "prefix": f"orgs/{actor.org_id}/clips/{clip_id}/media/1-1/",
        "master": "master.m3u8",
        "variants": [
            {"name": "v0", "width": 640, "height": 360, "bandwidth": 1, "codecs": "x",
             "playlist": "v0/index.m3u8"}
        ],
        "download": None, "poster": None, "storyboard": None, "storyboard_vtt": None,
    }  # fmt: skip
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Clip)
            .where(Clip.id == uuid.UUID(clip_id))
            .values(status=ClipStatus.ready, duration_ms=DURATION_MS, media=media)
        )
    return clip_id


async def mark(client: httpx.AsyncClient, actor: Any, clip_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/v1/clips/{clip_id}/exemplar", json=body, headers=actor.headers)


async def exemplar_clip(
    app: Any, client: httpx.AsyncClient, owner: Any, curator: Any, **extra: Any
) -> str:
    extra.setdefault("stage", "closing")
    extra.setdefault("skills", ["value_roi"])
    extra.setdefault("kind", "exemplar")
    clip_id = await playable_clip(app, client, owner, **extra)
    r = await mark(client, curator, clip_id, note="Watch the ROI framing")
    assert r.status_code == 200, r.text
    return clip_id


async def request_review(
    client: httpx.AsyncClient, actor: Any, clip_id: str, reviewer: Any, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/clips/{clip_id}/review-requests",
        json={"reviewer_id": reviewer.id if hasattr(reviewer, "id") else reviewer, **body},
        headers=actor.headers,
    )
