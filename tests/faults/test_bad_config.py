"""Bad configuration stops `serve` and `worker` at start-up with a clear message (exit 2)
and turns `readyz` to 503, instead of failing at a user's first upload."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.main import create_app

ROOT = Path(__file__).resolve().parent.parent.parent


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PEERPITCH_DATABASE_URL": f"sqlite+aiosqlite:///{cwd / 'cfg.db'}",
            "PEERPITCH_SECRET_KEY": "cfg-test-secret",
            **env,
        },
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


SMALL_PARTS = {"PEERPITCH_STORAGE": "s3", "PEERPITCH_UPLOAD_PART_SIZE": str(1024**2)}


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["worker"]])
def test_s3_part_size_below_5_mib_is_refused(command: list[str], tmp_path: Path) -> None:
    r = _run(command, SMALL_PARTS, tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "PEERPITCH_UPLOAD_PART_SIZE=1048576 is below S3's minimum part size" in r.stderr


def test_worker_without_ffmpeg_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    r = _run(["worker"], {"PATH": str(empty)}, tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "ffmpeg is not on PATH" in r.stderr


def test_worker_with_unwritable_scratch_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = _run(["worker"], {"PEERPITCH_SCRATCH_DIR": str(blocker / "scratch")}, tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "is not writable" in r.stderr


async def test_readyz_reports_bad_config(make_settings: Any) -> None:
    import httpx

    application = create_app(make_settings(storage="local", upload_part_size=1024**2))
    # Local storage takes any part size: ready.
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["checks"]["config"] == "ok"
    bad = make_settings(scratch_dir=Path("/proc/peerpitch-no-scratch"), embedded_worker=True)
    application = create_app(bad)
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["details"]["config"] == "invalid"
