"""The `peerpitch` command's application commands. The installed `peerpitch` entry point is
workers.cli, which adds the worker runtime's command (`peerpitch worker`) to these."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Mapping, Sequence

from app.config import ConfigError, Settings, check_config, get_settings

DEMO_ORG = "Demo"
DEMO_PASSWORD = "peerpitch-demo"  # noqa: S105 - fixed on purpose, printed, refused in production
DEMO_USERS = [
    ("admin@demo.peerpitch.dev", "Ada Admin", "admin"),
    ("coach@demo.peerpitch.dev", "Cole Coach", "coach"),
    ("top@demo.peerpitch.dev", "Tess Top", "top_performer"),
    ("rep@demo.peerpitch.dev", "Remy Rep", "rep"),
]


def _cmd_migrate(_args: argparse.Namespace, _settings: Settings) -> int:
    from app.migrate import upgrade_head

    upgrade_head()
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    settings.resolved_secret_key()  # fail fast with a clear message in production
    # Bad settings stop here, not at a user's first upload (the embedded worker adds its own).
    check_config(settings, media=False)
    uvicorn.run(
        # The API with its embedded worker when configured (workers.asgi composes them).
        "workers.asgi:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        # X-Forwarded-For/-Proto are believed only from these proxies (None: uvicorn reads
        # FORWARDED_ALLOW_IPS, default loopback). The client address they yield keys the
        # sign-in throttle: behind a proxy that is not listed, every client shares its address.
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_config=None,
    )
    return 0


async def _create_org(settings: Settings, name: str, email: str, password: str) -> dict[str, str]:
    from app.db import make_engine, make_sessionmaker
    from app.orgs.service import create_org

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            created = await create_org(
                session,
                name=name,
                admin_email=email,
                admin_password=password,
                admin_name=f"{name} admin",
            )
            return {"org_id": str(created.org.id), "admin_id": str(created.admin.id)}
    finally:
        await engine.dispose()


def _cmd_create_org(args: argparse.Namespace, settings: Settings) -> int:
    from app.errors import AppError

    if len(args.admin_password) < 8:
        print("error: the admin password needs at least 8 characters", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(
            _create_org(settings, args.name, args.admin_email, args.admin_password)
        )
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


async def _seed_demo(settings: Settings, *, only_if_empty: bool) -> bool:
    from sqlalchemy import select

    from app.db import make_engine, make_sessionmaker
    from app.orgs.models import Organization
    from app.orgs.service import create_org
    from app.users.models import Role, User
    from app.users.service import add_user

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            if only_if_empty and await session.scalar(select(Organization.id).limit(1)):
                return False
            # Emails are unique per organization only: the Demo org is the one named so with
            # the demo admin in it.
            demo_admin = (
                select(User.id)
                .join(Organization, Organization.id == User.org_id)
                .where(Organization.name == DEMO_ORG, User.email == DEMO_USERS[0][0])
            )
            if await session.scalar(demo_admin.limit(1)):
                return False
            admin_email, admin_name, _ = DEMO_USERS[0]
            created = await create_org(
                session,
                name=DEMO_ORG,
                admin_email=admin_email,
                admin_password=DEMO_PASSWORD,
                admin_name=admin_name,
            )
            for email, name, role in DEMO_USERS[1:]:
                await add_user(
                    session,
                    org_id=created.org.id,
                    email=email,
                    name=name,
                    role=Role(role),
                    password=DEMO_PASSWORD,
                )
            return True
    finally:
        await engine.dispose()


def print_demo_logins() -> None:
    print(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for email, _name, role in DEMO_USERS:
        print(f"  {role:<14} {email}")


def _cmd_seed_demo(args: argparse.Namespace, settings: Settings) -> int:
    if settings.is_production:
        print("error: seed-demo refuses to run when PEERPITCH_ENV=production", file=sys.stderr)
        return 2
    created = asyncio.run(_seed_demo(settings, only_if_empty=args.if_empty))
    if not created and args.if_empty:
        print("The database already has organizations; not seeding the Demo org.")
        print("(If it holds the Demo org, these logins work:)")
    else:
        print("Seeded the Demo organization." if created else "The Demo organization exists.")
    print_demo_logins()
    return 0


def _cmd_init_storage(_args: argparse.Namespace, settings: Settings) -> int:
    """S3: create the bucket if missing and apply the CORS rule browsers need to PUT parts."""
    from app.storage import S3Storage, build_storage

    storage = build_storage(settings, base_url=settings.public_base_url or "http://127.0.0.1:8000")
    if isinstance(storage, S3Storage):
        # S3 CORS cannot say "any localhost port", so development allows any origin.
        asyncio.run(
            storage.ensure_bucket(
                settings.cors_origins, allow_any_origin=not settings.is_production
            )
        )
        print(f"bucket {settings.s3_bucket!r} is ready (CORS: PUT/GET/HEAD, exposes ETag)")
    else:
        asyncio.run(storage.check())
        print(f"local storage folder {settings.media_dir} is ready")
    return 0


async def _queue_speech_analyses(settings: Settings, *, force: bool) -> int:
    from app.db import make_engine, make_sessionmaker
    from app.speech_analysis.maintenance import enqueue_analyses

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            return await enqueue_analyses(session, force=force)
    finally:
        await engine.dispose()


def _cmd_analyze_speech(args: argparse.Namespace, settings: Settings) -> int:
    count = asyncio.run(_queue_speech_analyses(settings, force=args.all))
    what = "ready pitches and exemplars" if args.all else "clips without a current analysis"
    print(f"queued the speech analysis of {count} {what} (workers run them)")
    return 0


Command = Callable[[argparse.Namespace, Settings], int]
# Adds a sub-command's parser to the subparsers action and returns its implementation.
CommandSpec = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], Command]


async def _reconcile_counters(settings: Settings, *, fix: bool) -> tuple[int, int]:
    from app.db import make_engine, make_sessionmaker, session_scope
    from app.ops.counters import reconcile_counters

    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            drift = await reconcile_counters(session, fix=fix)
    finally:
        await engine.dispose()
    return drift.helpful_count, drift.open_feedback_count


def _cmd_reconcile_counters(args: argparse.Namespace, settings: Settings) -> int:
    helpful, open_ = asyncio.run(_reconcile_counters(settings, fix=not args.dry_run))
    verb = "would fix" if args.dry_run else "fixed"
    print(f"{verb}: helpful_count on {helpful} feedback, open_feedback_count on {open_} clips")
    return 0


COMMANDS: dict[str, Command] = {
    "migrate": _cmd_migrate,
    "serve": _cmd_serve,
    "create-org": _cmd_create_org,
    "seed-demo": _cmd_seed_demo,
    "init-storage": _cmd_init_storage,
    "analyze-speech": _cmd_analyze_speech,
    "reconcile-counters": _cmd_reconcile_counters,
}


def build_parser(
    extra: Mapping[str, CommandSpec] | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(prog="peerpitch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = dict(COMMANDS)
    for name, spec in (extra or {}).items():
        commands[name] = spec(sub)

    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")

    serve = sub.add_parser("serve", help="serve the API with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="API processes")
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="comma-separated addresses (or *) of reverse proxies whose X-Forwarded-For is "
        "trusted for the client address (default: $FORWARDED_ALLOW_IPS, else loopback)",
    )

    org = sub.add_parser("create-org", help="create an organization and its first admin")
    org.add_argument("--name", required=True)
    org.add_argument("--admin-email", required=True)
    org.add_argument("--admin-password", required=True)

    sub.add_parser("init-storage", help="S3: create the bucket and its CORS rule (idempotent)")

    demo = sub.add_parser("seed-demo", help="create the Demo org with one user per role")
    demo.add_argument(
        "--if-empty", action="store_true", help="only when the database has no organization yet"
    )
    speech = sub.add_parser(
        "analyze-speech",
        help="queue speech analyses of ready clips that have none (e.g. after upgrading)",
    )
    speech.add_argument(
        "--all",
        action="store_true",
        help="analyse every ready pitch and exemplar again (e.g. after installing a model)",
    )
    reconcile = sub.add_parser(
        "reconcile-counters",
        help="recount helpful_count and open_feedback_count and fix any that drifted",
    )
    reconcile.add_argument("--dry-run", action="store_true", help="only report the drift")
    return parser, commands


def main(argv: Sequence[str] | None = None, extra: Mapping[str, CommandSpec] | None = None) -> int:
    parser, commands = build_parser(extra)
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        return commands[args.command](args, settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
