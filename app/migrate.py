"""Running Alembic from code (CLI, `make`, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

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
