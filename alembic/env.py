"""Alembic environment: async engine, URL from PEERPITCH_DATABASE_URL (or the caller)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from alembic import context
from app.config import get_settings
from app.db import UTCDateTime, is_sqlite, make_engine
from app.models import Base
from app.search.models import FTS_TABLE, PG_TEXT_INDEX

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url: str | None = config.attributes.get("database_url")
    return url or get_settings().database_url


def _ensure_sqlite_dir(url: str) -> None:
    if is_sqlite(url) and ":///" in url and ":memory:" not in url:
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migrations must not import app code: UTCDateTime is stored as a plain timestamptz.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Leave out what the search migration creates outside the metadata, per database
    (app.search.models): PostgreSQL's expression index, and SQLite's FTS5 table with the
    shadow tables FTS5 keeps for it (search_fts_data, _idx, _docsize, _config)."""
    if type_ == "table" and name is not None:
        return name != FTS_TABLE and not name.startswith(f"{FTS_TABLE}_")
    if type_ == "index":
        return name != PG_TEXT_INDEX
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = _url()
    _ensure_sqlite_dir(url)
    engine = make_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(_run_async())
