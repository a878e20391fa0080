from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PEERPITCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "PEERPITCH_SECRET_KEY": "cli-test-secret",
    }


def test_migrate_create_org_and_seed_demo(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    assert _run(["migrate"], sqlite_env, tmp_path).returncode == 0
    r = _run(
        [
            "create-org",
            "--name",
            "Acme",
            "--admin-email",
            "boss@acme.com",
            "--admin-password",
            "longenough",
        ],
        sqlite_env,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"org_id", "admin_id"}

    # Emails are unique per organization: the same address may run another organization.
    again = _run(
        [
            "create-org",
            "--name",
            "Acme2",
            "--admin-email",
            "BOSS@acme.com",
            "--admin-password",
            "longenough",
        ],
        sqlite_env,
        tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["org_id"] != out["org_id"]
    # Not even the demo admin's address, in another organization, makes the Demo org exist.
    r = _run(
        ["create-org", "--name", "Lookalike", "--admin-email", "admin@demo.peerpitch.dev",
         "--admin-password", "longenough"],
        sqlite_env,
        tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr

    # --if-empty does nothing once an org exists; plain seed-demo creates the Demo org once.
    r = _run(["seed-demo", "--if-empty"], sqlite_env, tmp_path)
    assert r.returncode == 0 and "not seeding" in r.stdout
    r = _run(["seed-demo"], sqlite_env, tmp_path)
    assert r.returncode == 0 and "Seeded" in r.stdout and "rep@demo.peerpitch.dev" in r.stdout
    r = _run(["seed-demo"], sqlite_env, tmp_path)
    assert r.returncode == 0 and "exists" in r.stdout


def test_seed_demo_refuses_in_production(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    r = _run(["seed-demo"], {**sqlite_env, "PEERPITCH_ENV": "production"}, tmp_path)
    assert r.returncode == 2
    assert "production" in r.stderr


def test_production_requires_secret_key(tmp_path: Path) -> None:
    env = {"PEERPITCH_ENV": "production", "PEERPITCH_SECRET_KEY": ""}
    r = _run(["serve", "--port", "1"], env, tmp_path)
    assert r.returncode == 2
    assert "PEERPITCH_SECRET_KEY is required" in r.stderr


def test_init_storage_creates_bucket_with_cors(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    bucket = f"init-{os.urandom(4).hex()}"
    env = {
        "PEERPITCH_STORAGE": "s3",
        "PEERPITCH_S3_ENDPOINT_URL": s3_endpoint,
        "PEERPITCH_S3_BUCKET": bucket,
        "PEERPITCH_SECRET_KEY": "cli-test-secret",
        "PEERPITCH_CORS_ORIGINS": "https://app.example.com",
        "PEERPITCH_ENV": "production",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for _ in range(2):  # idempotent
        r = _run(["init-storage"], env, tmp_path)
        assert r.returncode == 0, r.stderr
    rules = s3_client.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert any(
        "PUT" in rule["AllowedMethods"]
        and rule["AllowedOrigins"] == ["https://app.example.com"]
        and "ETag" in rule.get("ExposeHeaders", [])
        for rule in rules
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [([], None), (["--forwarded-allow-ips", "10.0.0.5,10.0.0.6"], "10.0.0.5,10.0.0.6")],
)
def test_serve_names_the_proxies_it_believes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], expected: str | None
) -> None:
    # The client address keys the sign-in throttle: X-Forwarded-For is believed only from
    # the proxies given here, else from those in uvicorn's FORWARDED_ALLOW_IPS (None).
    import uvicorn

    import app.logging
    from app.cli import main
    from app.config import get_settings

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    monkeypatch.setattr(app.logging, "configure_logging", lambda *a: None)
    monkeypatch.setenv("PEERPITCH_SECRET_KEY", "cli-test-secret")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        assert main(["serve", *args]) == 0
    finally:
        get_settings.cache_clear()
    assert calls[0]["proxy_headers"] is True
    assert calls[0]["forwarded_allow_ips"] == expected
