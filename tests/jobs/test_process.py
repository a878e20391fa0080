"""The worker as a real process: it shuts down cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from app.jobs.models import JobStatus
from app.jobs.service import enqueue

from .conftest import Jobs

ROOT = Path(__file__).resolve().parents[2]


async def start_worker(database_url: str, grace_s: float) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PEERPITCH_DATABASE_URL": database_url,
        "PEERPITCH_WORKER_EXTRA_MODULES": "tests.jobs.sample_handlers",
        "PEERPITCH_JOB_POLL_INTERVAL_S": "0.05",
        "PEERPITCH_LOG_LEVEL": "INFO",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.main",
        "--concurrency",
        "2",
        "--grace-s",
        str(grace_s),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop_worker(proc: asyncio.subprocess.Process, timeout: float) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return stderr.decode()


@pytest.mark.parametrize(
    ("seconds", "grace_s", "expected"),
    [
        (0.8, 20.0, JobStatus.succeeded),  # finishes within the grace period
        (3600.0, 0.5, JobStatus.queued),  # outlives it: cancelled and released
    ],
)
async def test_worker_process_shuts_down_cleanly_on_sigterm(
    database_url: str, jobs: Jobs, seconds: float, grace_s: float, expected: JobStatus
) -> None:
    proc = await start_worker(database_url, grace_s)
    try:
        async with jobs.sm.begin() as session:
            job = await enqueue(session, "test.sleep", {"seconds": seconds})
        # A fresh interpreter imports the app first: slow on a loaded machine.
        await jobs.wait_for(job.id, lambda j: j.status == JobStatus.running, timeout=60)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    stderr = await stop_worker(proc, timeout=10)
    assert proc.returncode == 0, stderr
    row = await jobs.get(job.id)
    assert row.status == expected, stderr
    assert row.lease_expires_at is None
    if expected == JobStatus.queued:
        # The interrupted attempt does not count; any worker may pick the job up again.
        assert (row.attempts, row.worker_id) == (0, None)
