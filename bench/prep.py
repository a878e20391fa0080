"""Prep-kit benchmark: `GET /v1/prep?stage=closing` against /healthz and /v1/me.

On PostgreSQL (a scratch database created and dropped here), bench/dataset.py loads one
organization with 10,000 playable clips over three stages and 1,000,000 feedback items (20 %
replies, some resolved, helpful reactions on a fraction), then marks 500 of the clips as
exemplars (spread over the stages, with views; their scores computed by the product's
refresh_scores). The caller is a rep who owns some closing clips with open feedback, so the
kit's three lists (the best closing exemplars with signed URLs, the most helpful tips on
closing clips, the caller's unresolved feedback on closing) are all filled. One API process
(uvicorn, one worker) serves the kit, `GET /v1/me` (the cheapest authenticated endpoint) and
`GET /healthz` (the framework alone). 32 keep-alive clients (raw asyncio streams in this
process, so the load generator costs little) drive each in turn, in rounds ordered
A B C C B A so drift and the neighbours' load hit all alike. Then the kit is offered half of
its measured maximum rate open loop (requests on a schedule).

Goals (issue 17): the kit ≥ 0.10x /healthz's requests per second; at half its maximum rate,
p99 ≤ 4x its single-client p50. The kit is served from the read cache (app.readcache, its
URLs signed for each answer) while nothing it shows changes; `--no-cache` measures the kit
computed for every request.

    .venv/bin/python bench/prep.py [--clips 10000] [--feedback 1000000] [--exemplars 500]
        [--seconds 10] [--rounds 2] [--clients 32] [--explain] [--sql STATEMENT] [--no-cache]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

A quick smoke run: `--clips 300 --feedback 20000 --exemplars 30 --seconds 2 --rounds 1`.
"""

# ruff: noqa: E402  (sys.path is fixed before the imports)
from __future__ import annotations

import sys
from pathlib import Path

# bench/queue.py would shadow the stdlib `queue` for scripts run from this folder.
BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path.insert(0, str(BENCH.parent))

import asyncio
import tempfile
import uuid
from collections import Counter
from typing import Any

from bench import harness

RATIO_GOAL = 0.10
STAGE = "closing"
LIMIT = 3  # the endpoint's default
SIZE_GOAL = 20 * 1024  # issue 7: the kit for limit=3 is under 20 KB


def pick_caller(data: Any) -> uuid.UUID:
    """The rep (not the hot clip's owner) who owns the most closing clips: their open
    feedback fills `my_open_feedback`."""
    hot_owner = next(c.owner_id for c in data.clips if c.id == data.hot_clip_id)
    owned = Counter(c.owner_id for c in data.clips if c.stage == STAGE)
    reps = [r for r in data.users["rep"] if r != hot_owner and owned[r]]
    if not reps:
        raise RuntimeError("no rep owns a closing clip: use more --clips")
    return max(reps, key=lambda r: (owned[r], r.int))


async def explain(url: str, caller_id: uuid.UUID, media: str, show: bool) -> None:
    """Run read_prep as the endpoint does, capture its SQL, EXPLAIN ANALYZE each one."""
    from app.exemplars.prep import read_prep
    from app.tenancy import Principal
    from app.users.models import User

    settings = harness.settings(0, url, media)

    held: list[User] = []  # the caller, loaded once and kept in the identity map

    async def kit(session: Any) -> None:
        if not held:
            held.append(await session.get(User, caller_id))
        user = held[0]
        await read_prep(session, Principal(user=user), settings, "http://x/", STAGE, LIMIT)

    heading = "  read_prep issues {n} statements (+1 for the caller's user in a request):"
    await harness.explain_calls(url, kit, heading, show)


def describe(port: int, path: str, token: str) -> int:
    """Fetch the kit once, print what it holds, check If-None-Match; return its size."""
    import httpx

    r = harness.fetch(port, path, token)
    kit = r.json()
    size = len(r.content)
    stages = ", ".join(f"{s['key']} {s['my_open_feedback']}" for s in kit["stages"])
    scores = ", ".join(f"{e['score']:.3f}" for e in kit["exemplars"])
    helpful = ", ".join(str(t["helpful_count"]) for t in kit["tips"])
    print(f"kit: {len(kit['exemplars'])} exemplars (scores {scores}), {len(kit['tips'])} tips "
          f"(helpful {helpful}), "
          f"{len(kit['my_open_feedback'])} of my open items; the caller's open feedback by "
          f"stage: {stages}")  # fmt: skip
    print(f"response: {size:,} bytes (goal < {SIZE_GOAL:,}: "
          f"{'met' if size < SIZE_GOAL else 'MISSED'})")  # fmt: skip
    assert len(kit["exemplars"]) == LIMIT, kit["exemplars"]
    assert kit["my_open_feedback"], "the caller has no open feedback on closing clips"
    again = httpx.get(
        f"http://127.0.0.1:{port}{path}",
        headers={"Authorization": f"Bearer {token}", "If-None-Match": r.headers["etag"]},
        timeout=30,
    )
    assert again.status_code == 304, again.status_code
    return size


def main() -> int:
    parser = harness.dataset_parser(__doc__)
    parser.add_argument("--exemplars", type=int, default=500, help="clips marked as exemplars")
    args = harness.parse_run_args(parser, "pp_bench_prep", "the kit's queries")
    if args is None:  # served the API
        return 0

    from bench.dataset import add_exemplars, build_dataset

    name = harness.scratch_name("pp_bench_prep", args.keep)
    with harness.scratch_database(args.database_url, name, keep=args.keep) as url:
        print(f"seeding {args.clips:,} clips, {args.feedback:,} feedback items and "
              f"{args.exemplars} exemplars into {name}")  # fmt: skip
        data = asyncio.run(
            build_dataset(
                url, clips=args.clips, feedback=args.feedback,
                hot_items=min(2_000, args.feedback), seed=args.seed,
            )
        )  # fmt: skip
        asyncio.run(add_exemplars(url, data, count=args.exemplars, seed=args.seed + 1))
        if args.sql:
            asyncio.run(harness.run_sql(url, args.sql, analyze="feedback, clips, exemplars"))
        caller = pick_caller(data)
        token = harness.access_token(caller, data.org_id)
        with (
            tempfile.TemporaryDirectory(prefix="pp-bench-prep-") as media,
            harness.running_server(__file__, url, media, *harness.cache_flag(args)) as port,
        ):
            me, kit = "/v1/me", f"/v1/prep?stage={STAGE}"
            size = describe(port, kit, token)
            print(f"{args.clients} clients, {args.seconds:g} s rounds")
            asyncio.run(explain(url, caller, media, args.explain))

            ok, solo = harness.against_health(
                port, "prep kit", kit, me, token, args, RATIO_GOAL, kit.split("?")[0]
            )
    print(f"  single client p50: {solo[kit].pct(50):.1f} ms vs /v1/me's {solo[me].pct(50):.1f} ms; "
          f"response {size:,} bytes")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
