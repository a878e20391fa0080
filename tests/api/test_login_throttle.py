"""Failed password checks are throttled per (email, client address) and per client address:
strangers cannot lock a user out of their own password, and one address guessing many
emails is slowed. Each client here connects from its own address (ASGITransport's client)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.auth.models import LoginFailure
from app.auth.tasks import purge_login_failures
from app.config import Settings
from tests.conftest import PASSWORD, task_context

From = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def client_from(app: Any) -> AsyncIterator[From]:
    """Clients of the test app, each connecting from the address it is made for."""
    async with AsyncExitStack() as stack:
        made: dict[str, httpx.AsyncClient] = {}

        def _from(host: str) -> httpx.AsyncClient:
            if host not in made:
                transport = httpx.ASGITransport(app=app, client=(host, 40000))
                made[host] = httpx.AsyncClient(transport=transport, base_url="http://testserver")
                stack.push_async_callback(made[host].aclose)
            return made[host]

        yield _from


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    return await client.post(
        "/v1/auth/token", json={"email": email, "password": password}, headers=headers
    )


async def age_failures(app: Any, seconds: int, *, only: int | None = None) -> None:
    """Move recorded failures ``seconds`` into the past (the ``only`` oldest ones, or all)."""
    async with app.state.sessionmaker.begin() as session:
        failures = (
            await session.scalars(select(LoginFailure).order_by(LoginFailure.created_at))
        ).all()
        for failure in failures[:only]:
            failure.created_at -= timedelta(seconds=seconds)


def retry_after(r: httpx.Response) -> int:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "login_throttled"
    return int(r.headers["retry-after"])


async def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(
    client_from: From, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    attacker, owner = client_from("203.0.113.9"), client_from("198.51.100.7")
    for _ in range(settings.login_max_failures):
        assert (await sign_in(attacker, org.admin.email, "wrong")).status_code == 401
    # The attacker's address is throttled for this email, even with the right password...
    wait = retry_after(await sign_in(attacker, org.admin.email))
    assert 1 <= wait <= settings.login_failure_window_s
    # ...while the owner, elsewhere, signs in (before: 429 for everyone).
    assert (await sign_in(owner, org.admin.email)).status_code == 200
    # And the attacker may still try other emails until the address budget is spent.
    assert (await sign_in(attacker, "someone@example.com", "wrong")).status_code == 401


async def test_many_emails_from_one_address_are_slowed(
    client_from: From, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    sprayer, bystander = client_from("203.0.113.10"), client_from("203.0.113.11")
    assert settings.login_address_max_failures == 20  # the default
    for i in range(20):
        r = await sign_in(sprayer, f"guess-{i}-{uuid.uuid4().hex[:6]}@example.com", "Winter2026!")
        assert r.status_code == 401, (i, r.text)
    # The 21st email from that address is refused before any password check, right or not.
    wait = retry_after(await sign_in(sprayer, f"guess-21-{uuid.uuid4().hex[:6]}@example.com"))
    assert 1 <= wait <= settings.login_failure_window_s
    retry_after(await sign_in(sprayer, org.admin.email))
    # Other addresses are not affected.
    assert (await sign_in(bystander, org.admin.email)).status_code == 200


async def test_retry_after_is_when_the_oldest_counted_failure_leaves_the_window(
    app: Any, client_from: From, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    client = client_from("203.0.113.12")
    for _ in range(settings.login_max_failures):
        await sign_in(client, org.admin.email, "wrong")
    window = settings.login_failure_window_s
    assert window == 60

    await age_failures(app, 45)
    # The window ends for the oldest counted failure in at most 60 - 45 = 15 s.
    assert 1 <= retry_after(await sign_in(client, org.admin.email)) <= 15
    # Refused attempts were not counted: once the window has passed, the password works.
    await age_failures(app, 16)
    assert (await sign_in(client, org.admin.email)).status_code == 200


async def test_a_success_forgets_its_own_failures_only(
    client_from: From, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    client = client_from("203.0.113.13")
    for _ in range(settings.login_max_failures - 1):
        assert (await sign_in(client, org.admin.email, "typo")).status_code == 401
    assert (await sign_in(client, org.admin.email)).status_code == 200
    # The typos were forgotten: a whole new allowance for this email.
    for _ in range(settings.login_max_failures - 1):
        assert (await sign_in(client, org.admin.email, "typo")).status_code == 401
    assert (await sign_in(client, org.admin.email)).status_code == 200

    # A success does not refill the address's budget spent on other emails.
    other = client_from("203.0.113.14")
    for i in range(settings.login_address_max_failures - 1):
        assert (await sign_in(other, f"x{i}@example.com", "wrong")).status_code == 401
    assert (await sign_in(other, org.admin.email)).status_code == 200
    assert (await sign_in(other, "y@example.com", "wrong")).status_code == 401
    retry_after(await sign_in(other, "z@example.com", "wrong"))


async def test_x_forwarded_for_does_not_buy_a_new_address(
    client_from: From, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    client = client_from("203.0.113.15")
    # The app sees the peer's address; only the server believes X-Forwarded-For, and only
    # from the proxies it is told to trust.
    for i in range(settings.login_max_failures):
        r = await sign_in(client, org.admin.email, "wrong", **{"X-Forwarded-For": f"10.0.0.{i}"})
        assert r.status_code == 401
    retry_after(await sign_in(client, org.admin.email, **{"X-Forwarded-For": "10.9.9.9"}))


async def test_an_ipv6_address_counts_as_its_64(
    client_from: From, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    for i in range(settings.login_max_failures):
        r = await sign_in(client_from(f"2001:db8:1:2::{i + 1:x}"), org.admin.email, "wrong")
        assert r.status_code == 401
    # Another address of the same /64 is the same client...
    retry_after(await sign_in(client_from("2001:db8:1:2:ffff::1"), org.admin.email))
    # ...another /64 is not.
    assert (await sign_in(client_from("2001:db8:1:3::1"), org.admin.email)).status_code == 200


async def test_current_password_checks_share_the_throttle(
    client_from: From, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    here, there = client_from("203.0.113.16"), client_from("203.0.113.17")
    rep = await org.add_user("rep")
    body = {"password": "a-brand-new-secret", "current_password": "wrong"}
    for _ in range(settings.login_max_failures):
        r = await here.patch("/v1/me", json=body, headers=rep.headers)
        assert r.status_code == 403
    # Those failures count for sign-in from that address...
    retry_after(await sign_in(here, rep.email))
    retry_after(
        await here.patch("/v1/me", json={**body, "current_password": PASSWORD}, headers=rep.headers)
    )
    # ...and nowhere else.
    assert (await sign_in(there, rep.email)).status_code == 200
    r = await there.patch(
        "/v1/me", json={**body, "current_password": PASSWORD}, headers=rep.headers
    )
    assert r.status_code == 200, r.text


async def test_failures_past_the_window_are_purged(
    app: Any, client_from: From, make_org: Any, settings: Settings
) -> None:
    org = await make_org()
    client = client_from("203.0.113.18")
    for _ in range(3):
        await sign_in(client, org.admin.email, "wrong")
    await age_failures(app, settings.login_failure_window_s + 1, only=1)
    await purge_login_failures(task_context(app))
    async with app.state.sessionmaker() as session:
        left = (await session.scalars(select(LoginFailure.id))).all()
    assert len(left) == 2
