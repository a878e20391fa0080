"""The authenticated request path: `GET /v1/me` against `GET /healthz` on the same server.

On PostgreSQL (a scratch database created and dropped here, with bench/dataset.py's small
organization), one API process (uvicorn, one worker) serves `GET /healthz` (the framework
alone: no token, no database) and `GET /v1/me` (the cheapest authenticated endpoint: the
token verified, the caller read from the database). Keep-alive clients (raw asyncio streams
in this process) drive each in turn, in rounds ordered A B B A so drift and the neighbours'
load hit both alike. Then each endpoint is offered half of its measured maximum rate open
loop (requests on a schedule, latency counted from when each was due).

Goals (issue 17): `/v1/me` ≥ 0.35x `/healthz`'s requests per second; at half of its maximum
rate, its p99 ≤ 4x its single-client p50.

    .venv/bin/python bench/api.py [--seconds 10] [--rounds 2] [--clients 32]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
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

from bench import harness

RATIO_GOAL = 0.35


def main() -> int:
    parser = harness.dataset_parser(__doc__)
    parser.set_defaults(clips=50, feedback=500)
    args = harness.parse_run_args(parser, "pp_bench_api", "(none)")
    if args is None:  # served the API
        return 0

    from bench.dataset import build_dataset

    name = harness.scratch_name("pp_bench_api", args.keep)
    with harness.scratch_database(args.database_url, name, keep=args.keep) as url:
        data = asyncio.run(
            build_dataset(
                url, clips=args.clips, feedback=args.feedback,
                hot_items=min(50, args.feedback), seed=args.seed, log=None,
            )
        )  # fmt: skip
        token = harness.access_token(data.viewer_id, data.org_id)
        with (
            tempfile.TemporaryDirectory(prefix="pp-bench-api-") as media,
            harness.running_server(__file__, url, media) as port,
        ):
            health, me = "/healthz", "/v1/me"
            harness.fetch(port, me, token)
            print(
                f"{args.clients} clients, {args.seconds:g} s rounds, {args.rounds} A B B A blocks"
            )
            solo = harness.warm_and_solo(port, (health, me), token, args.clients)
            tallies = harness.abba(
                port, (health, me), token, args.clients, args.seconds, args.rounds
            )
            harness.print_table(
                [("GET /healthz", tallies[health]), ("GET /v1/me", tallies[me])],
                [("1 client: /healthz", solo[health]), ("1 client: /v1/me", solo[me])],
            )
            ok = harness.ratio_line("GET /v1/me", tallies[me], "/healthz", tallies[health],
                                    RATIO_GOAL)  # fmt: skip
            for label, path in (("/healthz", health), ("/v1/me", me)):
                met = harness.latency_under_load(
                    port, label, path, token, tallies[path].rps, solo[path], args.seconds
                )
                ok = ok and (met or path == health)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
