"""Access tokens carry the user's token version: a password change or reset and a
deactivation move it on, so every access token issued before is refused (and reactivating
the user revives none). The login that changed its own password goes on."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt

from app.auth.security import issue_access_token
from tests.conftest import PASSWORD, TEST_SECRET, Actor, OrgCtx

NEW_PASSWORD = "a-brand-new-secret"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> Any:
    r = await client.post("/v1/auth/token", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def assert_revoked(client: httpx.AsyncClient, access_token: str) -> None:
    r = await client.get("/v1/me", headers=bearer(access_token))
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "token_revoked"
    assert r.headers["www-authenticate"] == "Bearer"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def rep_with_two_logins(org: OrgCtx) -> tuple[Actor, Any]:
    rep = await org.add_user("rep")
    return rep, await sign_in(org.client, rep.email)


async def test_password_change_refuses_the_other_logins_access_tokens(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, other = await rep_with_two_logins(org)
    r = await client.patch(
        "/v1/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=rep.headers,
    )
    assert r.status_code == 200, r.text

    # The other login's access token dies now, not in 15 minutes; so does its refresh token.
    await assert_revoked(client, other["access_token"])
    assert (await refresh(client, other["refresh_token"])).status_code == 401
    # The login that made the change goes on: its token, and what refreshing it issues.
    assert (await client.get("/v1/me", headers=rep.headers)).status_code == 200
    r = await refresh(client, rep.refresh_token)
    assert r.status_code == 200
    assert (await client.get("/v1/me", headers=bearer(r.json()["access_token"]))).status_code == 200
    # A name change alone ends nothing.
    again = await sign_in(client, rep.email, NEW_PASSWORD)
    r = await client.patch("/v1/me", json={"name": "Renamed"}, headers=rep.headers)
    assert r.status_code == 200
    assert (await client.get("/v1/me", headers=bearer(again["access_token"]))).status_code == 200


async def test_admin_reset_refuses_every_access_token(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, other = await rep_with_two_logins(org)
    r = await client.patch(
        f"/v1/users/{rep.id}", json={"password": NEW_PASSWORD}, headers=org.admin.headers
    )
    assert r.status_code == 200, r.text
    for login in ({"access_token": rep.access_token, "refresh_token": rep.refresh_token}, other):
        await assert_revoked(client, login["access_token"])
        r = await refresh(client, login["refresh_token"])
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_refresh_token"
    # The new password signs in, and that token works.
    fresh = await sign_in(client, rep.email, NEW_PASSWORD)
    assert (await client.get("/v1/me", headers=bearer(fresh["access_token"]))).status_code == 200
    # The admin's own token was untouched.
    assert (await client.get("/v1/me", headers=org.admin.headers)).status_code == 200


async def test_reactivation_revives_no_token(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep, other = await rep_with_two_logins(org)
    url = f"/v1/users/{rep.id}"
    r = await client.patch(url, json={"is_active": False}, headers=org.admin.headers)
    assert r.status_code == 200
    r = await client.get("/v1/me", headers=rep.headers)
    assert r.status_code == 401
    r = await client.patch(url, json={"is_active": True}, headers=org.admin.headers)
    assert r.status_code == 200
    # Before, the old tokens came back to life here.
    for login in ({"access_token": rep.access_token, "refresh_token": rep.refresh_token}, other):
        await assert_revoked(client, login["access_token"])
        assert (await refresh(client, login["refresh_token"])).status_code == 401
    fresh = await sign_in(client, rep.email)
    assert (await client.get("/v1/me", headers=bearer(fresh["access_token"]))).status_code == 200


async def test_a_role_change_keeps_tokens(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    r = await client.patch(
        f"/v1/users/{rep.id}", json={"role": "coach", "name": "Promoted"}, headers=org.admin.headers
    )
    assert r.status_code == 200
    r = await client.get("/v1/me", headers=rep.headers)
    assert r.status_code == 200
    assert r.json()["role"] == "coach"  # applied at once, from the user's row
    assert (await refresh(client, rep.refresh_token)).status_code == 200


async def test_a_later_reset_ends_the_kept_login_too(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    r = await client.patch(
        "/v1/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=rep.headers,
    )
    assert r.status_code == 200
    assert (await client.get("/v1/me", headers=rep.headers)).status_code == 200
    r = await client.patch(
        f"/v1/users/{rep.id}", json={"password": PASSWORD}, headers=org.admin.headers
    )
    assert r.status_code == 200
    await assert_revoked(client, rep.access_token)


async def test_tokens_from_before_versions(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    # Issued before access tokens carried "ver" (nor "sid"): valid until the first bump.
    legacy = jwt.encode(
        {"sub": rep.id, "org": org.org_id, "role": "rep", "typ": "access",
         "exp": int(time.time()) + 60},
        TEST_SECRET,
        algorithm="HS256",
    )  # fmt: skip
    assert (await client.get("/v1/me", headers=bearer(legacy))).status_code == 200
    r = await client.patch(
        f"/v1/users/{rep.id}", json={"password": NEW_PASSWORD}, headers=org.admin.headers
    )
    assert r.status_code == 200
    await assert_revoked(client, legacy)


async def test_a_malformed_version_is_an_invalid_token(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    for version in ("1", 1.5, True, None):
        token = jwt.encode(
            {"sub": org.admin.id, "org": org.org_id, "role": "admin", "typ": "access",
             "ver": version, "exp": int(time.time()) + 60},
            TEST_SECRET,
            algorithm="HS256",
        )  # fmt: skip
        r = await client.get("/v1/me", headers=bearer(token))
        assert r.status_code == 401, version
        assert r.json()["error"]["code"] == "invalid_token"
    # A future version (no token can have one) is refused like a stale one.
    ahead = issue_access_token(
        user_id=uuid.UUID(org.admin.id),
        org_id=uuid.UUID(org.org_id),
        role="admin",
        secret=TEST_SECRET,
        ttl_s=60,
        version=7,
    )
    await assert_revoked(client, ahead)
