from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from app.migrate import check
from app.openapi_export import render
from app.openapi_schema import LINKS

ROOT = Path(__file__).resolve().parent.parent


def test_committed_openapi_matches_the_app() -> None:
    committed = (ROOT / "openapi" / "openapi.json").read_text()
    assert committed == render(), "openapi/openapi.json is stale: run `make openapi`"


def test_every_operation_is_documented() -> None:
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


def _operations(doc: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (method, path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def test_operation_ids_are_readable_and_unique() -> None:
    doc = json.loads(render())
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+_[a-z_]+", operation_id), operation_id
    operations = _operations(doc)
    assert operations["clips_create"][:2] == ("post", "/v1/clips")
    assert operations["feedback_list"][:2] == ("get", "/v1/clips/{clip_id}/feedback")


def test_every_link_names_a_real_operation_and_parameter() -> None:
    doc = json.loads(render())
    operations = _operations(doc)
    for (source, status), links in LINKS.items():
        assert source in operations, f"link source {source} is not an operation"
        response = operations[source][2]["responses"][status]
        assert set(response["links"]) == set(links), f"{source} lost links to missing targets"
        for name, link in response["links"].items():
            target = operations[link["operationId"]][2]
            params = {p["name"] for p in target.get("parameters", [])}
            assert set(link["parameters"]) <= params, f"{source}.{name}"


def test_errors_are_the_envelope_and_headers_are_declared() -> None:
    doc = json.loads(render())
    assert "HTTPValidationError" not in json.dumps(doc)
    for operation_id, (_method, _path, op) in _operations(doc).items():
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            assert "X-Request-ID" in headers, f"{operation_id} {status}"
            if status == "201":
                assert "Location" in headers, operation_id
            if status in {"429", "503"}:
                assert "Retry-After" in headers, operation_id
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                codes = schema["properties"]["error"]["properties"]["code"]["enum"]
                assert codes, f"{operation_id} {status} lists no error codes"
    for operation_id, (_method, _path, op) in _operations(doc).items():
        if "201" in op["responses"]:  # it creates something: a retry must not create twice
            headers = {p["name"].lower() for p in op.get("parameters", []) if p["in"] == "header"}
            assert "idempotency-key" in headers, operation_id
    source = _operations(doc)["clips_put_source"][2]["requestBody"]["content"]
    assert {"application/octet-stream", "video/*"} <= set(source)
