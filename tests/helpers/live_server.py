"""A real `peerpitch serve` process on a free loopback port, for tests that drive the API as
outside tools do (the docs tour, the schema fuzzer): its own database, media folder and
working directory, the embedded worker included."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from app.migrate import create_scratch_database, drop_scratch_database

BIN = Path(sys.executable).parent
T = TypeVar("T")


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    env: dict[str, str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run() in a thread of its own: the caller's thread may already run an event
    loop (Playwright's sync API does, for the browser tests)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@contextmanager
def scratch_database_url(workdir: Path, name: str) -> Iterator[str]:
    """PostgreSQL when the suite runs on it (PEERPITCH_TEST_DATABASE_URL), else SQLite."""
    base = os.environ.get("PEERPITCH_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite+aiosqlite:///{workdir / 'live.db'}"
        return
    db_name = f"{name}_{os.getpid()}"
    url = _run(create_scratch_database(base, db_name))
    try:
        yield url
    finally:
        _run(drop_scratch_database(base, db_name))


@contextmanager
def live_server(
    workdir: Path, *, name: str = "pp_live", extra_env: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    with scratch_database_url(workdir, name) as database_url:
        port = free_port()
        env = {
            **os.environ,
            "PEERPITCH_DATABASE_URL": database_url,
            "PEERPITCH_MEDIA_DIR": str(workdir / "media"),
            "PEERPITCH_SECRET_KEY": "live-server-secret-key-0123456789-abcdefghijklmnop",
            "PEERPITCH_TRANSCODE_PRESET": "ultrafast",
            "PEERPITCH_ASR_ENGINE": "none",
            "PEERPITCH_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PEERPITCH_JOB_POLL_INTERVAL_S": "0.2",
            "PEERPITCH_LOG_LEVEL": "WARNING",
            # Webhook URLs made up by a test or a fuzzer never reach real DNS or another host.
            "PEERPITCH_WEBHOOK_EGRESS": "loopback",
            "PEERPITCH_WEBHOOK_ALLOW_LOOPBACK": "true",
            **(extra_env or {}),
        }
        peerpitch = str(BIN / "peerpitch")
        for command in (["migrate"], ["seed-demo", "--if-empty"]):
            subprocess.run(
                [peerpitch, *command], cwd=workdir, env=env, check=True, capture_output=True
            )
        log_path = workdir / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [peerpitch, "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = LiveServer(f"http://127.0.0.1:{port}", env, log_path)
        try:
            _wait_ready(server, process)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(server: LiveServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.base_url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a starting process: there is nothing to wait on instead
    raise RuntimeError(f"server not ready within 60 s:\n{server.log()}")
