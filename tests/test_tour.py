"""docs/tour.sh, the README's API tour, runs as written against a real `peerpitch serve`.

The server is the one `make run` starts (migrate, seed-demo, serve with its embedded worker),
in its own folder, on its own port and database (tests.helpers.live_server), so the test runs
under pytest-xdist and never touches var/. The tour runs twice against that server: a
newcomer runs it more than once, so a second run must pass too.

The database is the suite's: SQLite by default, PostgreSQL when PEERPITCH_TEST_DATABASE_URL is
set (a scratch database costs about a second there, and the tour then also covers the
production database through the real server: LISTEN/NOTIFY wake-ups, the asyncpg playback
reads).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.helpers.live_server import live_server

ROOT = Path(__file__).resolve().parent.parent
TOUR = ROOT / "docs" / "tour.sh"
TOOLS = ("bash", "curl", "jq", "ffmpeg")


# A tour run takes about 5 s; a stuck one is stopped well before the suite's patience ends.
TOUR_TIMEOUT_S = 90


def _run_tour(base_url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PEERPITCH_URL": base_url, "TMPDIR": str(workdir)}
    try:
        return subprocess.run(
            ["bash", str(TOUR)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=TOUR_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out, err = (
            part.decode(errors="replace") if isinstance(part, bytes) else (part or "")
            for part in (exc.stdout, exc.stderr)
        )
        return subprocess.CompletedProcess(exc.cmd, -1, out, err + f"\ntimed out: {exc}")


def test_the_api_tour_runs_twice_against_a_fresh_server(tmp_path: Path) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, f"the tour needs {missing} (`make deps` installs them)"
    with live_server(tmp_path / "server", name="pp_tour") as server:
        for attempt in (1, 2):
            started = time.monotonic()
            run = _run_tour(server.base_url, tmp_path)
            report = (
                f"tour run {attempt} exited {run.returncode} after "
                f"{time.monotonic() - started:.1f} s\n--- stdout ---\n{run.stdout[-20_000:]}"
                f"\n--- stderr ---\n{run.stderr[-10_000:]}\n--- server log ---\n{server.log()}"
            )
            assert run.returncode == 0, report
            # The last step ran, so no step was skipped by an early exit that returned 0.
            assert "== Done" in run.stdout, report
            # Nothing failed along the way, even inside a pipeline.
            assert "FAILED" not in run.stderr, report
