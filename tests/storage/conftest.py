from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.storage import LocalStorage, S3Storage, Storage
from tests.fixtures.s3 import S3_REGION

SECRET = "storage-test-secret"
BASE_URL = "http://media.test"


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", secret_key=SECRET, public_base_url=BASE_URL)


@pytest.fixture
def s3_storage(s3_endpoint: str, s3_bucket: str) -> S3Storage:
    return S3Storage(bucket=s3_bucket, region=S3_REGION, endpoint_url=s3_endpoint)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    """Each test using this runs once per adapter."""
    adapter: Storage = request.getfixturevalue(f"{request.param}_storage")
    return adapter


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy from the environment must not intercept 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        yield client
