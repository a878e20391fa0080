"""Running Alembic from code (CLI, `make`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
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
