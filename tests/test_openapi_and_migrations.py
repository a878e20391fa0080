from __future__ import annotations

import os
from pathlib import Path

from app.migrate import check
from app.openapi_export import render

ROOT = Path(__file__).resolve().parent.parent


def test_committed_openapi_matches_the_app() -> None:
    committed = (ROOT / "openapi" / "openapi.json").read_text()
    assert committed == render(), "openapi/openapi.json is stale: run `make openapi`"


def test_every_operation_is_documented() -> None:
    import json

    doc = json.loads(render())
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary"), f"{method} {path} has no summary"
            assert op.get("tags"), f"{method} {path} has no tag"
            if path not in ("/healthz", "/metrics"):  # these two answer 200 or nothing
                codes = {int(c) for c in op.get("responses", {}) if c.isdigit()}
                assert any(c >= 400 for c in codes), f"{method} {path} documents no error"


def test_alembic_check_passes(database_url: str) -> None:
    # database_url is already at head; check() fails if models and migrations disagree.
    check(database_url)


def test_backend_is_the_one_requested(database_url: str) -> None:
    wanted = os.environ.get("PEERPITCH_TEST_DATABASE_URL")
    if wanted or os.environ.get("PEERPITCH_TEST_REQUIRE_POSTGRES"):
        assert database_url.startswith("postgresql"), "the PostgreSQL run must use PostgreSQL"
    else:
        assert database_url.startswith("sqlite")
