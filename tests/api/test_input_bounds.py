"""Inputs bounded before they reach the database (issue 15, item 5): sizes and other integers
within what their columns hold, and list cursors checked like any other input. Written from
the probe's reproductions: `size_bytes` 1e30 and a cursor holding a string where a time
belongs both answered 500."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.api.feedback_helpers import post_feedback
from tests.helpers.api import clip_body, create_clip, exemplar_clip, request_review

GIB = 1024**3


async def _clip_ids(client: httpx.AsyncClient, actor: Any) -> list[str]:
    r = await client.get("/v1/clips", params={"limit": 100}, headers=actor.headers)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


async def test_size_bytes_is_bounded_before_anything_is_written(
    client: httpx.AsyncClient, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    kept = (await create_clip(client, rep))["clip"]["id"]

    async def create(size: Any, **headers: str) -> httpx.Response:
        return await client.post(
            "/v1/clips",
            content=json.dumps(clip_body(size_bytes=size)),
            headers={**rep.headers, "Content-Type": "application/json", **headers},
        )

    # Beyond what the column holds (the probe's 1e30, as an integer and as a number): 422.
    for size in (10**30, 1e30, 2**63):
        r = await create(size)
        assert r.status_code == 422, (size, r.text)
        assert r.json()["error"]["code"] == "validation_error"
        assert r.json()["error"]["details"][0]["loc"] == ["body", "size_bytes"]
    # Over the configured limit (8 GiB): 413 file_too_large, with or without a retry key.
    assert settings.max_upload_bytes == 8 * GIB
    for size in (8 * GIB + 1, 2**63 - 1):
        for extra in ({}, {"Idempotency-Key": f"big-{size}"}):
            r = await create(size, **extra)
            assert r.status_code == 413, (size, r.text)
            assert r.json()["error"]["code"] == "file_too_large"
    # Nothing half-written: no clip (and so no upload) besides the one made first.
    assert await _clip_ids(client, rep) == await _clip_ids(client, org.admin) == [kept]
    # The limit itself is accepted.
    r = await create(8 * GIB)
    assert r.status_code == 201, r.text
    assert r.json()["upload"]["part_count"] >= 1


async def test_restarting_an_upload_is_bounded_the_same_way(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    created = await create_clip(client, rep)
    clip_id, upload_id = created["clip"]["id"], created["upload"]["id"]
    assert (await client.delete(f"/v1/uploads/{upload_id}", headers=rep.headers)).status_code == 204
    url = f"/v1/clips/{clip_id}/upload"
    r = await client.post(url, json={"size_bytes": 10**30}, headers=rep.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
    r = await client.post(url, json={"size_bytes": 8 * GIB + 1}, headers=rep.headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    clip = (await client.get(f"/v1/clips/{clip_id}", headers=rep.headers)).json()
    assert (clip["status"], clip["size_bytes"], clip["upload"]) == ("failed", 1000, None)


async def test_huge_integers_never_reach_the_database(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    """Every integer a client sends into a column is bounded by its schema (32-bit INTEGER
    columns: 2**31 - 1; BIGINT: 2**63 - 1): beyond it, 422, never a driver error."""
    org = await make_org()
    top, coach = await org.add_user("top_performer"), await org.add_user("coach")
    clip_id = await exemplar_clip(app, client, top, coach)
    item = (await post_feedback(client, top, clip_id)).json()
    upload = (await create_clip(client, top))["upload"]["id"]
    huge = 2**31
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", f"/v1/clips/{clip_id}/views", {"position_ms": 0, "watched_ms": huge}),
        ("POST", f"/v1/clips/{clip_id}/views", {"position_ms": huge, "watched_ms": 0}),
        ("POST", f"/v1/clips/{clip_id}/feedback", {"body": "x", "timestamp_ms": huge}),
        ("POST", f"/v1/clips/{clip_id}/feedback", {"body": "x", "timestamp_ms": 0, "end_ms": huge}),
        ("PATCH", f"/v1/feedback/{item['id']}", {"timestamp_ms": huge}),
        ("PATCH", f"/v1/feedback/{item['id']}", {"end_ms": 10**30}),
        ("POST", f"/v1/uploads/{upload}/parts", {"part_numbers": [10**30]}),
        ("POST", f"/v1/uploads/{upload}/complete", {"parts": [{"number": huge, "etag": "x"}]}),
    ]
    for method, url, body in attempts:
        r = await client.request(method, url, json=body, headers=top.headers)
        assert r.status_code == 422, (method, url, body, r.text)
    r = await client.get("/v1/clips", params={"limit": 10**30}, headers=top.headers)
    assert r.status_code == 422


# --- cursors -----------------------------------------------------------------------------------


def _values(cursor: str) -> list[Any]:
    """A cursor's JSON: its list's tag, then the sort-key values of the row it follows."""
    values: list[Any] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return values


def _cursor(values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).rstrip(b"=").decode()


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return next(iter(value))
    return type(value).__name__


# What an attacker writes in place of a cursor's value (kind, value): each is refused unless
# it is a well-formed value of the original's type (`_refused`).
_FORGED: list[tuple[str, Any]] = [
    ("str", "yesterday"),  # the probe's: a string where a time belongs
    ("str", "a\x00b"),
    ("int", 10**30),
    ("int", 2**31),
    ("float", float("nan")),
    ("float", 1.5),
    ("bool", True),
    ("none", None),
    ("list", [1, 2]),
    ("t", {"t": "2026-01-01T00:00:00"}),  # no offset
    ("t", {"t": "0001-01-01T00:00:00+05:00"}),  # before year 1 in UTC
    ("t", {"t": 12}),
    ("u", {"u": 5}),
    ("u", {"u": "not-a-uuid"}),
    ("other", {"x": "1"}),
    ("other", {"t": "2026-01-01T00:00:00+00:00", "u": str(uuid.uuid4())}),
]


def _refused(original: Any, forged_kind: str, forged: Any) -> bool:
    """Whether ``forged`` in place of ``original`` must be refused: all of them but a plain
    string for a string, and a finite number (integer or not) for a float."""
    kind = _kind(original)
    if kind == "str":
        return forged != "yesterday"
    if kind == "float":
        return forged_kind not in ("int", "float") or forged != forged  # NaN
    return True


class TestCursors:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        # Webhook endpoints on 127.0.0.1 (nothing is delivered in these tests).
        return make_settings(webhook_allow_loopback=True)  # type: ignore[no-any-return]

    async def _lists(
        self, app: Any, client: httpx.AsyncClient, make_org: Any
    ) -> dict[str, tuple[Any, dict[str, Any]]]:
        """Every list that takes a cursor, each holding two items or more: path -> (caller,
        query)."""
        org = await make_org()
        admin = org.admin
        top, coach = await org.add_user("top_performer"), await org.add_user("coach")
        rep = await org.add_user("rep")
        for _ in range(2):
            r = await client.post(
                "/v1/webhooks",
                json={"url": "http://127.0.0.1:9/hook", "events": ["*"]},
                headers=admin.headers,
            )
            assert r.status_code == 201, r.text
        hook = r.json()["id"]
        clips = [await exemplar_clip(app, client, top, coach) for _ in range(2)]
        for clip_id in clips:
            for viewer in (rep, coach):
                r = await client.post(
                    f"/v1/clips/{clip_id}/views",
                    json={"position_ms": 100, "watched_ms": 100},
                    headers=viewer.headers,
                )
                assert r.status_code == 200, r.text
            for _ in range(2):  # each notifies the clip's owner
                assert (await post_feedback(client, rep, clip_id)).status_code == 201
        for reviewer in (rep, coach):
            assert (await request_review(client, top, clips[0], reviewer)).status_code == 201
        return {
            "/v1/clips": (rep, {}),
            f"/v1/clips/{clips[0]}/feedback": (rep, {}),
            f"/v1/clips/{clips[0]}/views": (top, {}),
            "/v1/me/history": (rep, {}),
            "/v1/exemplars": (rep, {}),
            "/v1/notifications": (top, {}),
            "/v1/people": (rep, {}),
            "/v1/review-requests": (top, {"box": "outbox"}),
            "/v1/users": (admin, {}),
            "/v1/webhooks": (admin, {}),
            f"/v1/webhooks/{hook}/deliveries": (admin, {}),
        }

    async def test_every_list_refuses_forged_cursors(
        self, app: Any, client: httpx.AsyncClient, make_org: Any
    ) -> None:
        lists = await self._lists(app, client, make_org)

        async def page(path: str, cursor: str | None = None) -> httpx.Response:
            actor, query = lists[path]
            params = {**query, "limit": 1} | ({"cursor": cursor} if cursor else {})
            return await client.get(path, params=params, headers=actor.headers)

        def refused(r: httpx.Response) -> bool:
            return r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"

        cursors: dict[str, str] = {}
        for path in lists:
            r = await page(path)
            assert r.status_code == 200 and r.json()["next_cursor"], (path, r.text)
            cursors[path] = r.json()["next_cursor"]
            r = await page(path, cursors[path])
            assert r.status_code == 200 and r.json()["items"], (path, r.text)

        for path, cursor in cursors.items():
            tag, *values = _values(cursor)
            # Garbled, cut, re-encoded without the list's tag (the probe's), not JSON.
            garbled = [
                "!!!",
                cursor[: len(cursor) // 2],
                _cursor(values),
                _cursor(["yesterday", *values[1:]]),
                _cursor({"t": tag, "v": values}),
                base64.urlsafe_b64encode(b"\xff\xfe").decode(),
            ]
            for bad in garbled:
                assert refused(await page(path, bad)), (path, bad)
            # Each value replaced with one of another kind, or malformed.
            for i, original in enumerate(values):
                for forged_kind, forged in _FORGED:
                    if not _refused(original, forged_kind, forged):
                        continue
                    forged_values = [*values[:i], forged, *values[i + 1 :]]
                    r = await page(path, _cursor([tag, *forged_values]))
                    assert refused(r), (path, i, original, forged, r.text)

        # Another list's cursor: refused, unless both lists are the same order over the
        # same rows (who watched a clip, and what I watched: a position in either).
        viewers = next(p for p in lists if p.endswith("/views"))
        for path in lists:
            for other, cursor in cursors.items():
                if other == path or {path, other} == {viewers, "/v1/me/history"}:
                    continue
                assert refused(await page(path, cursor)), (path, other)
