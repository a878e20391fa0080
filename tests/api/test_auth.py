from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import func, select, text, update

from app.auth import service as auth_service
from app.auth.models import RefreshToken
from app.auth.security import digest_token, issue_access_token
from app.config import Settings
from tests.conftest import PASSWORD, TEST_SECRET, is_postgres
from tests.helpers.waiting import eventually


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
    # Expired (but genuine): its own code, and the message says what to do.
    assert r.json()["error"]["code"] == "token_expired"
    assert "POST /v1/auth/refresh" in r.json()["error"]["message"]
    assert r.headers["www-authenticate"] == "Bearer"

    header, payload, sig = org.admin.access_token.split(".")
    tampered_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    r = await client.get(
        "/v1/me", headers={"Authorization": f"Bearer {header}.{payload}.{tampered_sig}"}
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"

    # An expired token with a bad signature is not "expired": it was never valid.
    e_header, e_payload, _ = expired.split(".")
    r = await client.get(
        "/v1/me",
        headers={"Authorization": f"Bearer {e_header}.{e_payload}.{tampered_sig}"},
    )
    assert r.json()["error"]["code"] == "invalid_token"

    forged = issue_access_token(
        user_id=org.admin.id, org_id=org.org_id, role="admin", secret="other-secret-" * 4, ttl_s=60
    )
    r = await client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"
    r = await client.get("/v1/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert r.json()["error"]["code"] == "invalid_token"


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

    # Reusing a rotated token whose successor was used too (even within the grace window)
    # is refused and kills the whole family, newest included.
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


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


async def test_token_responses_carry_both_lifetimes(
    client: httpx.AsyncClient, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    r = await client.post("/v1/auth/token", json={"email": org.admin.email, "password": PASSWORD})
    assert r.status_code == 200
    assert r.json()["expires_in"] == settings.access_token_ttl_s
    assert r.json()["refresh_expires_in"] == settings.refresh_token_ttl_s
    r = await refresh(client, r.json()["refresh_token"])
    assert r.status_code == 200
    assert r.json()["expires_in"] == settings.access_token_ttl_s
    assert r.json()["refresh_expires_in"] == settings.refresh_token_ttl_s


async def test_access_tokens_name_their_login(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    claims = jwt.decode(org.admin.access_token, TEST_SECRET, algorithms=["HS256"])
    r = await refresh(client, org.admin.refresh_token)
    refreshed = jwt.decode(r.json()["access_token"], TEST_SECRET, algorithms=["HS256"])
    # Rotation keeps the login (the refresh family); a new login is another one.
    assert uuid.UUID(claims["sid"]) == uuid.UUID(refreshed["sid"])
    other = await client.post(
        "/v1/auth/token", json={"email": org.admin.email, "password": PASSWORD}
    )
    assert (
        jwt.decode(other.json()["access_token"], TEST_SECRET, algorithms=["HS256"])["sid"]
        != claims["sid"]
    )


async def _family_revoked(app: Any, token: str) -> bool:
    """Every token of ``token``'s family is revoked."""
    async with app.state.sessionmaker() as session:
        family = await session.scalar(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == digest_token(token))
        )
        alive = await session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None))
        )
    return family is not None and alive == 0


class TestRefreshGraceWindow:
    GRACE_S = 20

    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        return make_settings(refresh_reuse_grace_s=self.GRACE_S)  # type: ignore[no-any-return]

    async def test_repeat_within_the_window_answers_the_same_pair(
        self, app: Any, client: httpx.AsyncClient, make_org: Any
    ) -> None:
        org = await make_org()
        first = org.admin.refresh_token
        r1 = await refresh(client, first)
        assert r1.status_code == 200
        # The response was lost (or another tab raced): the same token again.
        r2 = await refresh(client, first)
        assert r2.status_code == 200, r2.text
        assert r2.json()["refresh_token"] == r1.json()["refresh_token"]
        assert 0 < r2.json()["refresh_expires_in"] <= r1.json()["refresh_expires_in"]
        assert (
            await client.get("/v1/me", headers=bearer(r2.json()["access_token"]))
        ).status_code == 200
        assert not await _family_revoked(app, first)

        # The login goes on: the successor rotates normally...
        r3 = await refresh(client, r2.json()["refresh_token"])
        assert r3.status_code == 200
        assert r3.json()["refresh_token"] != r2.json()["refresh_token"]
        # ...and once it has been used, the first token is behind the chain: a copy.
        r4 = await refresh(client, first)
        assert r4.status_code == 401
        assert r4.json()["error"]["code"] == "invalid_refresh_token"
        assert (await refresh(client, r3.json()["refresh_token"])).status_code == 401
        assert await _family_revoked(app, first)

    async def test_reuse_after_the_window_revokes_the_family(
        self, app: Any, client: httpx.AsyncClient, make_org: Any
    ) -> None:
        org = await make_org()
        first = org.admin.refresh_token
        successor = (await refresh(client, first)).json()["refresh_token"]
        # The window is measured from the rotation: move it GRACE_S + 1 s into the past.
        async with app.state.sessionmaker.begin() as session:
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == digest_token(first))
            )
            assert row is not None and row.used_at is not None
            row.used_at -= timedelta(seconds=self.GRACE_S + 1)
        r = await refresh(client, first)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_refresh_token"
        assert (await refresh(client, successor)).status_code == 401
        assert await _family_revoked(app, first)

    async def test_successors_from_before_derivation_keep_reuse_detection(
        self, app: Any, client: httpx.AsyncClient, make_org: Any
    ) -> None:
        org = await make_org()
        first = org.admin.refresh_token
        successor = (await refresh(client, first)).json()["refresh_token"]
        # As if the rotation had happened before this release: a random successor.
        async with app.state.sessionmaker.begin() as session:
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == digest_token(successor))
                .values(token_hash=digest_token("random-" + uuid.uuid4().hex))
            )
        r = await refresh(client, first)
        assert r.status_code == 401
        assert await _family_revoked(app, first)

    async def test_logout_ends_the_window_too(
        self, client: httpx.AsyncClient, make_org: Any
    ) -> None:
        org = await make_org()
        first = org.admin.refresh_token
        pair = (await refresh(client, first)).json()
        r = await client.post("/v1/auth/logout", headers=bearer(pair["access_token"]))
        assert r.status_code == 204
        assert (await refresh(client, first)).status_code == 401

    async def test_concurrent_refreshes_of_one_token_get_the_same_pair(
        self, app: Any, client: httpx.AsyncClient, make_org: Any, settings: Settings
    ) -> None:
        org = await make_org()
        token = org.admin.refresh_token
        url = str(app.state.engine.url)

        async def lock_waiters() -> int:
            async with app.state.engine.connect() as conn:
                count = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            return int(count or 0)

        async with app.state.sessionmaker() as winner:
            won = await auth_service.refresh(winner, settings, token)  # rotated, uncommitted
            racing = asyncio.create_task(refresh(client, token))
            if is_postgres(url):
                # The racer read the token as unused and now waits on its row lock; when the
                # winner commits, its guarded UPDATE finds the token taken.
                await eventually(lock_waiters, what="the second refresh blocked on the row")
            await winner.commit()
        r = await racing
        assert r.status_code == 200, r.text
        assert r.json()["refresh_token"] == won.refresh_token
        assert (
            await client.get("/v1/me", headers=bearer(r.json()["access_token"]))
        ).status_code == 200
        assert not await _family_revoked(app, token)


class TestNoRefreshGraceWindow:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        return make_settings(refresh_reuse_grace_s=0)  # type: ignore[no-any-return]

    async def test_any_reuse_revokes_the_family(
        self, app: Any, client: httpx.AsyncClient, make_org: Any
    ) -> None:
        org = await make_org()
        first = org.admin.refresh_token
        successor = (await refresh(client, first)).json()["refresh_token"]
        r = await refresh(client, first)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_refresh_token"
        assert (await refresh(client, successor)).status_code == 401
        assert await _family_revoked(app, first)


async def test_logout_ends_the_callers_login_only(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    other_login = (
        await client.post("/v1/auth/token", json={"email": rep.email, "password": PASSWORD})
    ).json()

    r = await client.post("/v1/auth/logout", headers=rep.headers)
    assert r.status_code == 204
    assert r.content == b""
    r = await refresh(client, rep.refresh_token)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_refresh_token"
    # Idempotent.
    assert (await client.post("/v1/auth/logout", headers=rep.headers)).status_code == 204
    # The user's other login and other users are untouched.
    assert (await refresh(client, other_login["refresh_token"])).status_code == 200
    assert (await refresh(client, org.admin.refresh_token)).status_code == 200


async def test_logout_with_a_token_from_before_sid(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    legacy = bearer(
        issue_access_token(
            user_id=uuid.UUID(rep.id),
            org_id=uuid.UUID(org.org_id),
            role="rep",
            secret=TEST_SECRET,
            ttl_s=60,
        )
    )
    # Without sid nor body nothing names a login: still 204, nothing ended.
    assert (await client.post("/v1/auth/logout", headers=legacy)).status_code == 204
    # Another user's refresh token in the body is not the caller's to end.
    r = await client.post(
        "/v1/auth/logout", json={"refresh_token": org.admin.refresh_token}, headers=legacy
    )
    assert r.status_code == 204
    assert (await refresh(client, org.admin.refresh_token)).status_code == 200
    pair = (await refresh(client, rep.refresh_token)).json()

    r = await client.post(
        "/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}, headers=legacy
    )
    assert r.status_code == 204
    assert (await refresh(client, pair["refresh_token"])).status_code == 401


async def test_logout_needs_an_access_token(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    r = await client.post("/v1/auth/logout", json={"refresh_token": org.admin.refresh_token})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert (await refresh(client, org.admin.refresh_token)).status_code == 200
