"""Fixtures of the speech analysis tests: generated speech clips (espeak-ng), settings for a
real worker on local storage (no transcript unless a test asks for an engine), helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.clips.transcode import transcode_clip
from app.jobs.kinds import TRANSCODE_CLIP
from app.jobs.registry import JobServices, Registry
from tests.helpers.transcode import transcode_settings
from tests.speech.conftest import Audio
from workers.runtime import Worker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "speech_settings(**overrides): settings of the test's app and worker"
    )


@pytest.fixture(scope="session")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    return Audio(tmp_path_factory.mktemp("speech-clips"))


@pytest.fixture
def settings(make_settings: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """No transcript (engine none) unless the test's ``speech_settings`` marker says
    otherwise; whisper without a model folder gets one holding files that are no model, so
    its engine fails to load in the worker."""
    marker = request.node.get_closest_marker("speech_settings")
    overrides: dict[str, Any] = {"asr_engine": "none", **(marker.kwargs if marker else {})}
    if overrides["asr_engine"] == "whisper" and "asr_model_dir" not in overrides:
        folder = tmp_path / "not-a-model"
        folder.mkdir()
        for name in ("model.bin", "config.json", "tokenizer.json"):
            (folder / name).write_text("not a model")
        overrides["asr_model_dir"] = folder
    return transcode_settings(make_settings, "local", request, **overrides)


@asynccontextmanager
async def transcode_only_worker(app: Any) -> AsyncIterator[Worker]:
    """A worker that transcodes but leaves analyze_speech jobs queued, for tests that run
    the speech job's handler themselves."""
    registry = Registry()
    registry.add(TRANSCODE_CLIP, transcode_clip)
    worker = Worker(
        app.state.settings,
        app.state.engine,
        app.state.sessionmaker,
        JobServices(storage=app.state.storage),
        registry,
        1,
        grace_s=5,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def speech_of(client: httpx.AsyncClient, actor: Any, clip_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/clips/{clip_id}/speech", headers=actor.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def speech_events(
    client: httpx.AsyncClient, admin: Any, clip_id: str
) -> list[dict[str, Any]]:
    r = await client.get(
        "/v1/events", params={"types": "clip.speech_analyzed"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["data"]["id"] == clip_id]
