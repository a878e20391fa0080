"""Counters never drift: helpful_count and open_feedback_count equal a fresh recount after
many clients toggle concurrently, and `peerpitch reconcile-counters` repairs a drifted one."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import update

from app.clips.models import Clip
from app.feedback.models import Feedback
from app.ops.counters import reconcile_counters
from tests.api.feedback_helpers import playable_clip, post_feedback

ROOT = Path(__file__).resolve().parent.parent.parent


async def test_concurrent_toggling_matches_a_recount(
    app: Any, client: httpx.AsyncClient, make_org: Any, database_url: str, tmp_path: Path
) -> None:
    org = await make_org()
    owner = await org.add_user("rep")
    users = [await org.add_user("rep") for _ in range(6)]
    clip_id = await playable_clip(app, client, owner)
    roots = [(await post_feedback(client, owner, clip_id)).json()["id"] for _ in range(3)]
    rng = random.Random(18)

    async def toggler(actor: Any) -> None:
        for _ in range(12):
            fid = rng.choice(roots)
            method = rng.choice(["post", "delete"])
            r = await client.request(
                method, f"/v1/feedback/{fid}/reactions/helpful", headers=actor.headers
            )
            assert r.status_code == 200, r.text

    async def resolver() -> None:
        for _ in range(12):
            fid = rng.choice(roots)
            method = rng.choice(["post", "delete"])
            r = await client.request(method, f"/v1/feedback/{fid}/resolve", headers=owner.headers)
            assert r.status_code == 200, r.text

    await asyncio.gather(*(toggler(u) for u in users), resolver(), resolver())

    async with app.state.sessionmaker.begin() as session:
        drift = await reconcile_counters(session, fix=False)
    assert (drift.helpful_count, drift.open_feedback_count) == (0, 0)

    # The API's figures equal the recount too.
    r = await client.get(f"/v1/clips/{clip_id}/feedback", headers=owner.headers)
    assert r.status_code == 200, r.text

    # A drifted counter (a manual fix gone wrong, a restore) is repaired by the command.
    async with app.state.sessionmaker.begin() as session:
        await session.execute(update(Feedback).values(helpful_count=Feedback.helpful_count + 7))
        await session.execute(update(Clip).values(open_feedback_count=99))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PEERPITCH_DATABASE_URL": database_url}
    run = subprocess.run(
        [sys.executable, "-m", "workers.cli", "reconcile-counters"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "fixed: helpful_count on 3 feedback" in run.stdout
    async with app.state.sessionmaker.begin() as session:
        drift = await reconcile_counters(session, fix=False)
    assert (drift.helpful_count, drift.open_feedback_count) == (0, 0)
