"""Running Alembic from code (CLI, `make`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy.engine import make_url

from alembic import command


def project_root() -> Path:
    """The folder holding alembic.ini: the source checkout, or the working directory when the
    package is installed into site-packages (the Docker image runs from /srv/peerpitch)."""
    for candidate in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (candidate / "alembic.ini").is_file():
            return candidate
    raise RuntimeError("alembic.ini not found: run peerpitch from the project folder")


def alembic_config(database_url: str | None = None) -> Config:
    root = project_root()
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "alembic"))
    if database_url:
        cfg.attributes["database_url"] = database_url
    return cfg


def upgrade_head(database_url: str | None = None, *, quiet: bool = False) -> None:
    cfg = alembic_config(database_url)
    if quiet:
        cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")


def check(database_url: str | None = None) -> None:
    command.check(alembic_config(database_url))


async def _run_on_server(server_url: str, *statements: str) -> None:
    import asyncpg  # type: ignore[import-untyped,unused-ignore]

    url = make_url(server_url)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _quoted(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain database name: {name!r}")
    return f'"{name}"'


async def create_scratch_database(server_url: str, name: str) -> str:
    """(Re)create PostgreSQL database ``name`` on the server of ``server_url`` (tests, benches)
    and return its URL."""
    await _run_on_server(
        server_url,
        f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)",
        f"CREATE DATABASE {_quoted(name)}",
    )
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_scratch_database(server_url: str, name: str) -> None:
    await _run_on_server(server_url, f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
