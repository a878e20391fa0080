from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import PASSWORD


async def test_admin_creates_lists_and_updates_users(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    r = await client.post(
        "/v1/users",
        json={
            "email": "New.Rep@Example.com",
            "name": "New Rep",
            "role": "rep",
            "password": PASSWORD,
        },
        headers=org.admin.headers,
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == "new.rep@example.com"
    assert user["org_id"] == org.org_id
    assert "password" not in user and "password_hash" not in user

    r = await client.patch(
        f"/v1/users/{user['id']}",
        json={"role": "top_performer", "name": "Star"},
        headers=org.admin.headers,
    )
    assert r.status_code == 200
    assert r.json()["role"] == "top_performer"
    assert r.json()["name"] == "Star"

    r = await client.get("/v1/users", headers=org.admin.headers)
    assert r.status_code == 200
    ids = [u["id"] for u in r.json()["items"]]
    assert set(ids) == {org.admin.id, user["id"]}


async def test_duplicate_email_is_409_within_the_org_only(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    other = await make_org("Other")
    body = {"email": org.admin.email.upper(), "name": "x", "role": "rep", "password": PASSWORD}
    r = await client.post("/v1/users", json=body, headers=org.admin.headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "email_taken"
    # Another organization's address is no conflict (and no hint that it exists).
    body["email"] = other.admin.email.upper()
    r = await client.post("/v1/users", json=body, headers=org.admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["org_id"] == org.org_id


async def test_non_admins_cannot_manage_users(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    for role in ("rep", "top_performer", "coach"):
        actor = await org.add_user(role)
        r = await client.post(
            "/v1/users",
            json={
                "email": f"x-{role}@example.com",
                "name": "x",
                "role": "rep",
                "password": PASSWORD,
            },
            headers=actor.headers,
        )
        assert r.status_code == 403, role
        assert r.json()["error"]["code"] == "forbidden"
        assert (await client.get("/v1/users", headers=actor.headers)).status_code == 403


async def test_other_org_ids_are_404_and_lists_are_scoped(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    a = await make_org("A")
    b = await make_org("B")
    rep_a = await a.add_user("rep")

    for path in (f"/v1/users/{rep_a.id}", f"/v1/users/{a.admin.id}"):
        r = await client.get(path, headers=b.admin.headers)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
        r = await client.patch(path, json={"name": "pwned"}, headers=b.admin.headers)
        assert r.status_code == 404

    r = await client.get("/v1/users", headers=b.admin.headers)
    assert [u["id"] for u in r.json()["items"]] == [b.admin.id]
    # Unchanged in org A.
    r = await client.get(f"/v1/users/{rep_a.id}", headers=a.admin.headers)
    assert r.json()["name"] == "rep"


async def test_unknown_user_is_404(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    r = await client.get(f"/v1/users/{uuid.uuid4()}", headers=org.admin.headers)
    assert r.status_code == 404


async def test_last_admin_cannot_be_demoted(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    r = await client.patch(
        f"/v1/users/{org.admin.id}", json={"role": "rep"}, headers=org.admin.headers
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "last_admin"


async def test_users_are_cursor_paginated(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    created = {org.admin.id}
    for i in range(4):
        r = await client.post(
            "/v1/users",
            json={
                "email": f"p{i}-{uuid.uuid4().hex[:6]}@example.com",
                "name": f"u{i}",
                "role": "rep",
                "password": PASSWORD,
            },
            headers=org.admin.headers,
        )
        created.add(r.json()["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/v1/users", params=params, headers=org.admin.headers)
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [u["id"] for u in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == created

    for bad in ({"limit": 0}, {"limit": 101}, {"cursor": "%%%not-base64"}):
        r = await client.get("/v1/users", params=bad, headers=org.admin.headers)
        assert r.status_code == 422, bad
        assert "error" in r.json()


async def test_orgs_made_with_the_cli_are_isolated(
    client: httpx.AsyncClient, database_url: str, tmp_path: Any
) -> None:
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import TEST_SECRET

    env = {
        **os.environ,
        "PEERPITCH_DATABASE_URL": database_url,
        "PEERPITCH_SECRET_KEY": TEST_SECRET,
    }
    admins = {}
    for name in ("A", "B"):
        email = f"cli-{name.lower()}-{uuid.uuid4().hex[:6]}@example.com"
        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "create-org", "--name", name,
             "--admin-email", email, "--admin-password", PASSWORD],
            env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
        )  # fmt: skip
        ids = json.loads(out.stdout)
        token = (
            await client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        ).json()["access_token"]
        admins[name] = (ids, {"Authorization": f"Bearer {token}"})
    (a_ids, _a), (_b_ids, b_headers) = admins["A"], admins["B"]
    r = await client.get(f"/v1/users/{a_ids['admin_id']}", headers=b_headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    listed = (await client.get("/v1/users", headers=b_headers)).json()["items"]
    assert a_ids["admin_id"] not in {u["id"] for u in listed}


async def test_create_user_sends_location_and_honours_idempotency_key(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    body = {"email": "idem@example.com", "name": "Idem", "role": "rep", "password": PASSWORD}
    headers = {**org.admin.headers, "Idempotency-Key": "create-idem-1"}
    r = await client.post("/v1/users", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/users/{r.json()['id']}"
    assert "idempotent-replayed" not in r.headers
    assert (await client.get(r.headers["location"], headers=org.admin.headers)).json() == r.json()

    replay = await client.post("/v1/users", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == r.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == r.headers["location"]
    listed = (await client.get("/v1/users", headers=org.admin.headers)).json()["items"]
    assert len(listed) == 2  # the admin and one new user

    # The same key with another request (even only another password) is refused.
    other = {**body, "password": PASSWORD + "-other"}
    r = await client.post("/v1/users", json=other, headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused"
    # Without a key, a retry is a new request: the email is taken.
    r = await client.post("/v1/users", json=body, headers=org.admin.headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "email_taken"


async def test_user_changes_own_name_and_password(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep", name="Rep")
    other_login = (
        await client.post("/v1/auth/token", json={"email": rep.email, "password": PASSWORD})
    ).json()

    r = await client.patch("/v1/me", json={"name": "  Renamed Rep "}, headers=rep.headers)
    assert r.status_code == 200, r.text
    assert r.json() == (await client.get("/v1/me", headers=rep.headers)).json()
    assert r.json()["name"] == "Renamed Rep"

    new_password = "a-brand-new-secret"
    r = await client.patch(
        "/v1/me",
        json={"password": new_password, "current_password": PASSWORD},
        headers=rep.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed Rep"
    login = {"email": rep.email, "password": new_password}
    assert (await client.post("/v1/auth/token", json=login)).status_code == 200
    old = {"email": rep.email, "password": PASSWORD}
    assert (await client.post("/v1/auth/token", json=old)).status_code == 401

    # Every other login of the user ended; the caller's own goes on.
    r = await client.post("/v1/auth/refresh", json={"refresh_token": other_login["refresh_token"]})
    assert r.status_code == 401
    r = await client.post("/v1/auth/refresh", json={"refresh_token": rep.refresh_token})
    assert r.status_code == 200
    assert (await client.get("/v1/me", headers=rep.headers)).status_code == 200


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep", name="Rep")
    new_password = "a-brand-new-secret"

    r = await client.patch("/v1/me", json={"password": new_password}, headers=rep.headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "current_password_required"

    r = await client.patch(
        "/v1/me",
        json={"name": "Changed", "password": new_password, "current_password": "wrong-one"},
        headers=rep.headers,
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "current_password_invalid"
    # Nothing of the refused request was applied.
    assert (await client.get("/v1/me", headers=rep.headers)).json()["name"] == "Rep"
    login = {"email": rep.email, "password": PASSWORD}
    assert (await client.post("/v1/auth/token", json=login)).status_code == 200

    # The new password follows the rules of user creation.
    r = await client.patch(
        "/v1/me", json={"password": "short", "current_password": PASSWORD}, headers=rep.headers
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


async def test_wrong_current_passwords_are_throttled(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    body = {"password": "a-brand-new-secret", "current_password": "wrong"}
    for _ in range(5):
        r = await client.patch("/v1/me", json=body, headers=rep.headers)
        assert r.status_code == 403
    # Throttled now, even with the right current password.
    r = await client.patch(
        "/v1/me", json={**body, "current_password": PASSWORD}, headers=rep.headers
    )
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "login_throttled"
    assert "retry-after" in r.headers
