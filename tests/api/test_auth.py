from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from app.auth.security import issue_access_token
from tests.conftest import PASSWORD, TEST_SECRET


async def test_login_and_me(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    r = await client.get("/v1/me", headers=org.admin.headers)
    assert r.status_code == 200
    me = r.json()
    assert me["id"] == org.admin.id
    assert me["org_id"] == org.org_id
    assert me["role"] == "admin"
    assert set(me) >= {"id", "email", "name", "role", "org_id"}


async def test_login_email_is_case_insensitive(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    r = await client.post(
        "/v1/auth/token", json={"email": org.admin.email.upper(), "password": PASSWORD}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0


async def test_wrong_password_is_401_with_envelope(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    r = await client.post("/v1/auth/token", json={"email": org.admin.email, "password": "nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_credentials"


async def test_failed_logins_are_throttled(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    for _ in range(5):
        r = await client.post(
            "/v1/auth/token", json={"email": org.admin.email, "password": "wrong"}
        )
        assert r.status_code == 401
    # Even the right password is refused while throttled.
    r = await client.post("/v1/auth/token", json={"email": org.admin.email, "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "login_throttled"
    assert "retry-after" in r.headers


async def test_missing_expired_and_tampered_tokens_are_401(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    assert (await client.get("/v1/me")).status_code == 401

    expired = jwt.encode(
        {
            "sub": org.admin.id,
            "org": org.org_id,
            "role": "admin",
            "typ": "access",
            "exp": int(time.time()) - 10,
        },
        TEST_SECRET,
        algorithm="HS256",
    )
    r = await client.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"

    header, payload, sig = org.admin.access_token.split(".")
    tampered_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    r = await client.get(
        "/v1/me", headers={"Authorization": f"Bearer {header}.{payload}.{tampered_sig}"}
    )
    assert r.status_code == 401

    forged = issue_access_token(
        user_id=org.admin.id, org_id=org.org_id, role="admin", secret="other-secret-" * 4, ttl_s=60
    )
    r = await client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_refresh_rotates_and_reuse_revokes_family(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    first = org.admin.refresh_token

    r = await client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 200
    second = r.json()["refresh_token"]
    assert second != first
    assert (
        await client.get("/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    ).status_code == 200

    r = await client.post("/v1/auth/refresh", json={"refresh_token": second})
    assert r.status_code == 200
    third = r.json()["refresh_token"]

    # Reusing a rotated token is refused and kills the whole family, newest included.
    r = await client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_refresh_token"
    r = await client.post("/v1/auth/refresh", json={"refresh_token": third})
    assert r.status_code == 401

    # A separate login starts a new, healthy family.
    r = await client.post("/v1/auth/token", json={"email": org.admin.email, "password": PASSWORD})
    r = await client.post("/v1/auth/refresh", json={"refresh_token": r.json()["refresh_token"]})
    assert r.status_code == 200


async def test_unknown_refresh_token_is_401(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/auth/refresh", json={"refresh_token": "not-a-token"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_refresh_token"


async def test_deactivated_user_loses_access(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    r = await client.patch(
        f"/v1/users/{rep.id}", json={"is_active": False}, headers=org.admin.headers
    )
    assert r.status_code == 200
    assert (await client.get("/v1/me", headers=rep.headers)).status_code == 401
    r = await client.post("/v1/auth/refresh", json={"refresh_token": rep.refresh_token})
    assert r.status_code == 401
