"""Fixtures of the worker tests: a storage backend per run, settings for it, source clips
and a real Worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import running_worker
from tests.helpers.transcode import transcode_settings
from tests.media.conftest import Clips
from workers.runtime import Worker


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("worker-clips"))


@pytest.fixture
def settings(make_settings: Any, backend: str, request: pytest.FixtureRequest) -> Any:
    return transcode_settings(make_settings, backend, request)


@pytest.fixture
async def worker(app: Any) -> AsyncIterator[Worker]:
    async with running_worker(app, concurrency=1) as w:
        yield w
