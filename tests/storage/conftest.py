from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from app.errors import install_error_handlers
from app.storage import LocalStorage, S3Storage, Storage
from app.storage.media_router import router as media_router
from tests.fixtures.s3 import S3_REGION
from tests.storage.helpers import DATA, chunked

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


def make_media_app(storage: Storage | None) -> FastAPI:
    """An app with only the signed media route, serving ``storage``."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(media_router)
    app.state.storage = storage
    app.state.settings = SimpleNamespace(secret_key=SECRET)
    return app


@pytest.fixture
async def client(local_storage: LocalStorage) -> AsyncIterator[httpx.AsyncClient]:
    """The media route over a local folder holding ``v/1/clip.mp4`` (DATA)."""
    await local_storage.put_stream("v/1/clip.mp4", chunked(DATA))
    transport = httpx.ASGITransport(app=make_media_app(local_storage))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
