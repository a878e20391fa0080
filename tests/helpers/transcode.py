"""Helpers of the tests that run real transcodes: settings for a worker on a storage
backend, uploading a file through the API, waiting for its clip to settle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.api import clip_body
from tests.helpers.waiting import eventually


def transcode_settings(
    make_settings: Any, backend: str, request: pytest.FixtureRequest, **extra: Any
) -> Any:
    """Settings for a real worker on `backend` (S3: the moto server), fast x264."""
    overrides: dict[str, Any] = {"transcode_preset": "ultrafast", "max_duration_s": 60, **extra}
    if backend == "s3":
        overrides.update(
            storage="s3",
            s3_endpoint_url=request.getfixturevalue("s3_endpoint"),
            s3_bucket=request.getfixturevalue("s3_bucket"),
        )
    return make_settings(**overrides)


async def upload(client: httpx.AsyncClient, actor: Any, path: Path, **extra: Any) -> str:
    data = path.read_bytes()
    r = await client.post(
        "/v1/clips", json=clip_body(size_bytes=max(1, len(data)), **extra), headers=actor.headers
    )
    assert r.status_code == 201, r.text
    clip_id: str = r.json()["clip"]["id"]
    if data:
        r = await client.put(f"/v1/clips/{clip_id}/source", content=data, headers=actor.headers)
        assert r.status_code == 202, r.text
    return clip_id


async def get_clip(client: httpx.AsyncClient, actor: Any, clip_id: str) -> dict[str, Any]:
    clip: dict[str, Any] = (await client.get(f"/v1/clips/{clip_id}", headers=actor.headers)).json()
    return clip


async def wait_settled(
    client: httpx.AsyncClient, actor: Any, clip_id: str, timeout: float = 90
) -> list[dict[str, Any]]:
    """Poll like a client does; returns every distinct (status, progress) seen."""
    seen: list[dict[str, Any]] = []

    async def look() -> dict[str, Any]:
        clip = await get_clip(client, actor, clip_id)
        if not seen or (seen[-1]["status"], seen[-1]["progress"]) != (
            clip["status"],
            clip["progress"],
        ):
            seen.append(clip)
        return clip

    await eventually(
        look,
        until=lambda clip: clip["status"] in ("ready", "failed"),
        timeout=timeout,
        interval=0.05,
        what=f"clip {clip_id} to be ready or failed",
    )
    return seen
