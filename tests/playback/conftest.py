"""A live server (uvicorn on a free port, in a thread) with an embedded worker: ffmpeg and
ffprobe fetch playback URLs over real HTTP. One server, org and transcoded clips per module
and storage backend, so the added test time stays small."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from app.orgs.service import create_org
from tests.conftest import PASSWORD, TEST_SECRET, truncate_all
from tests.helpers.api import clip_body
from tests.helpers.waiting import eventually_sync
from tests.media.conftest import Clips
from workers.main import embedded_worker


@dataclass
class User:
    id: str
    headers: dict[str, str]


@dataclass
class Live:
    base_url: str
    http: httpx.Client
    settings: Settings
    admin: User
    users: dict[str, User] = field(default_factory=dict)
    org_id: str = ""

    def login(self, email: str) -> User:
        r = self.http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        me = self.http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
        return User(me["id"], {"Authorization": f"Bearer {token}"})

    def add_user(self, role: str, admin: User | None = None) -> User:
        email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        r = self.http.post(
            "/v1/users",
            json={"email": email, "name": role, "role": role, "password": PASSWORD},
            headers=(admin or self.admin).headers,
        )
        assert r.status_code == 201, r.text
        return self.login(email)

    def new_org(self, name: str) -> User:
        email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
        asyncio.run(_make_org(self.settings.database_url, name, email))
        return self.login(email)

    def upload(self, actor: User, path: Path, **extra: Any) -> str:
        data = path.read_bytes()
        r = self.http.post(
            "/v1/clips", json=clip_body(size_bytes=len(data), **extra), headers=actor.headers
        )
        assert r.status_code == 201, r.text
        clip_id: str = r.json()["clip"]["id"]
        r = self.http.put(f"/v1/clips/{clip_id}/source", content=data, headers=actor.headers)
        assert r.status_code == 202, r.text
        return clip_id

    def wait_ready(self, actor: User, clip_id: str, timeout: float = 120) -> dict[str, Any]:
        """Poll like a client does (the worker runs in the server's thread)."""
        clip: dict[str, Any] = eventually_sync(
            lambda: self.http.get(f"/v1/clips/{clip_id}", headers=actor.headers).json(),
            until=lambda c: c["status"] in ("ready", "failed"),
            timeout=timeout,
            interval=0.1,
            what=f"clip {clip_id} to be transcoded",
        )
        assert clip["status"] == "ready", clip
        return clip


async def _make_org(database_url: str, name: str, email: str) -> None:
    from app.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            await create_org(
                session, name=name, admin_email=email, admin_password=PASSWORD, admin_name=name
            )
    finally:
        await engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["local", "s3"])
def live(
    request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    asyncio.run(truncate_all(database_url))
    port = _free_port()
    values: dict[str, Any] = {
        "env": "development",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "media_dir": tmp_path_factory.mktemp("live-media"),
        "embedded_worker": True,
        "job_poll_interval_s": 0.1,
        "log_format": "console",
        "log_level": "WARNING",
        "transcode_preset": "ultrafast",
        "max_duration_s": 60,
    }
    bucket = None
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        s3 = request.getfixturevalue("s3_client")
        bucket = f"live-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        values.update(storage="s3", s3_endpoint_url=endpoint, s3_bucket=bucket)
    settings = Settings(**values)
    app = create_app(settings, background=embedded_worker)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the server thread died"
        return bool(server.started)

    eventually_sync(started, timeout=30, what="the server to start")
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            admin_email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
            asyncio.run(_make_org(database_url, "Acme", admin_email))
            live = Live(base_url=base, http=http, settings=settings, admin=User("", {}))
            live.admin = live.login(admin_email)
            yield live
    finally:
        server.should_exit = True
        thread.join(60)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("playback-clips"))
