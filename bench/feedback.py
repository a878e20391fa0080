"""Feedback-listing benchmark: a busy clip's first page of threads against GET /v1/me.

On PostgreSQL (a scratch database created and dropped here), bench/dataset.py loads one
organization with 10,000 playable clips and 1,000,000 feedback items (20 % replies, some
resolved, helpful reactions on a fraction); one clip carries 2,000 of them. One API process
(uvicorn, one worker) serves `GET /v1/clips/{id}/feedback` (its first page: 50 threads with
their replies, helpful counts and the caller's reactions), `GET /v1/me` (the cheapest
authenticated endpoint) and `GET /healthz` (the framework alone). 32 keep-alive clients (raw
asyncio streams in this process, so the load generator costs little) drive each in turn,
in rounds ordered A B C C B A so drift and the neighbours' load hit all alike. Then the page
is offered half of its measured maximum rate open loop (requests on a schedule).

Goals (issue 17): the page ≥ 0.12x /healthz's requests per second; at half its maximum rate,
p99 ≤ 4x its single-client p50. The page is served from the read cache (app.readcache) while
nothing it shows changes; `--no-cache` measures the page computed for every request.

    .venv/bin/python bench/feedback.py [--clips 10000] [--feedback 1000000]
        [--hot-items 2000] [--seconds 10] [--rounds 2] [--clients 32] [--explain] [--no-cache]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

A quick smoke run: `--clips 200 --feedback 20000 --seconds 2 --rounds 1`.
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
import json
import tempfile
import uuid
from typing import Any

from bench import harness

RATIO_GOAL = 0.12


async def explain(url: str, clip_id: uuid.UUID, viewer_id: uuid.UUID, show: bool) -> None:
    """Run list_threads as the endpoint does, capture its SQL, EXPLAIN ANALYZE each one."""
    from app.feedback.service import FeedbackFilters, list_threads
    from app.pagination import PageParams
    from app.tenancy import Principal
    from app.users.models import User

    held: list[User] = []  # the caller, loaded once and kept in the identity map

    async def page(session: Any) -> None:
        if not held:
            held.append(await session.get(User, viewer_id))
        user = held[0]
        params = PageParams(limit=50, cursor=None)
        await list_threads(session, Principal(user=user), clip_id, FeedbackFilters(), params)

    heading = (
        "  list_threads issues {n} statements for one page (+1 for the caller's user in a request):"
    )
    await harness.explain_calls(url, page, heading, show)


# --- main ---------------------------------------------------------------------------------------


def main() -> int:
    parser = harness.dataset_parser(__doc__)
    parser.add_argument("--hot-items", type=int, default=2_000,
                        help="feedback items on the clip whose page is fetched")  # fmt: skip
    args = harness.parse_run_args(parser, "pp_bench_feedback", "the page's queries")
    if args is None:  # served the API
        return 0

    from bench.dataset import build_dataset

    name = harness.scratch_name("pp_bench_feedback", args.keep)
    with harness.scratch_database(args.database_url, name, keep=args.keep) as url:
        print(f"seeding {args.clips:,} clips and {args.feedback:,} feedback items into {name}")
        data = asyncio.run(
            build_dataset(
                url, clips=args.clips, feedback=args.feedback, hot_items=args.hot_items,
                seed=args.seed,
            )
        )  # fmt: skip
        if args.sql:
            asyncio.run(harness.run_sql(url, args.sql, analyze="feedback"))
        token = harness.access_token(data.viewer_id, data.org_id)
        with (
            tempfile.TemporaryDirectory(prefix="pp-bench-feedback-") as media,
            harness.running_server(__file__, url, media, *harness.cache_flag(args)) as port,
        ):
            me, page = "/v1/me", f"/v1/clips/{data.hot_clip_id}/feedback"
            body = harness.fetch(port, page, token).json()
            items = body["items"]
            replies = sum(t["reply_count"] for t in items)
            helpful = sum(t["helpful_count"] > 0 for t in items) + sum(
                r["helpful_count"] > 0 for t in items for r in t["replies"]
            )
            mine = sum(t["reacted_by_me"] for t in items) + sum(
                r["reacted_by_me"] for t in items for r in t["replies"]
            )
            size = len(json.dumps(body))
            assert len(items) == min(50, args.hot_items), len(items)
            print(f"page: {len(items)} threads, {replies} replies, {helpful} items marked "
                  f"helpful ({mine} by the caller), ~{size / 1024:.0f} KiB; "
                  f"{args.clients} clients, {args.seconds:g} s rounds")  # fmt: skip
            asyncio.run(explain(url, data.hot_clip_id, data.viewer_id, args.explain))

            ok, _solo = harness.against_health(
                port, "feedback page", page, me, token, args, RATIO_GOAL, "…/feedback"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
