"""Fixtures of the worker tests: a storage backend per run and a real Worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import running_worker
from workers.runtime import Worker


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def worker(app: Any) -> AsyncIterator[Worker]:
    async with running_worker(app, concurrency=1) as w:
        yield w
