"""The installed `peerpitch` command: the application's commands (app.cli) plus the worker
runtime's own, `peerpitch worker`. It lives here because it is the one place that knows
both: the application never imports the runtime."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app import cli
from app.config import Settings


def _worker_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> cli.Command:
    worker = sub.add_parser("worker", help="run a job worker until SIGTERM/SIGINT")
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="jobs at a time (default: PEERPITCH_WORKER_CONCURRENCY)",
    )

    def run(args: argparse.Namespace, settings: Settings) -> int:
        from workers.main import run_worker

        return run_worker(settings, concurrency=args.concurrency)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, extra={"worker": _worker_command})


if __name__ == "__main__":
    sys.exit(main())
