"""Identities belong to their organization: an email is unique within one organization, the
same address may be a separate account elsewhere, and sign-in finds the account the
password opens (naming the organization only when it opens several)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from app.auth import service as auth_service
from tests.conftest import PASSWORD, OrgCtx

OTHER_PASSWORD = "another-correct-horse"


async def add_account(
    org: OrgCtx, email: str, *, password: str = PASSWORD, role: str = "rep"
) -> httpx.Response:
    return await org.client.post(
        "/v1/users",
        json={"email": email, "name": f"{role} of {org.org_id[:8]}", "role": role,
              "password": password},
        headers=org.admin.headers,
    )  # fmt: skip


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str, **extra: Any
) -> httpx.Response:
    return await client.post("/v1/auth/token", json={"email": email, "password": password, **extra})


async def me(client: httpx.AsyncClient, token_answer: httpx.Response) -> dict[str, Any]:
    assert token_answer.status_code == 200, token_answer.text
    headers = {"Authorization": f"Bearer {token_answer.json()['access_token']}"}
    r = await client.get("/v1/me", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def email() -> str:
    return f"shared-{uuid.uuid4().hex[:10]}@example.com"


async def test_an_address_of_another_org_is_neither_revealed_nor_taken(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    a = await make_org("A")
    b = await make_org("B")
    taken_in_a = email()
    r = await add_account(a, taken_in_a)
    assert r.status_code == 201, r.text

    # The probe: B's admin creating an address A holds got 409 email_taken. Now it is a
    # new, separate account of B; nothing says A has one.
    r = await add_account(b, taken_in_a.upper(), password=OTHER_PASSWORD)
    assert r.status_code == 201, r.text
    assert r.json()["org_id"] == b.org_id
    assert r.json()["email"] == taken_in_a

    # Squatting: B creates an address first; A can still add its own person.
    squatted = email()
    assert (await add_account(b, squatted, password=OTHER_PASSWORD)).status_code == 201
    r = await add_account(a, squatted)
    assert r.status_code == 201, r.text
    assert r.json()["org_id"] == a.org_id

    # Each organization sees its own accounts only.
    for org in (a, b):
        listed = (await client.get("/v1/users", headers=org.admin.headers)).json()["items"]
        assert {u["org_id"] for u in listed} == {org.org_id}
        assert {u["email"] for u in listed} >= {taken_in_a, squatted}


async def test_same_org_duplicate_is_409(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    address = email()
    assert (await add_account(org, address)).status_code == 201
    r = await add_account(org, f"  {address.upper()} ")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "email_taken"


async def test_sign_in_with_one_org_needs_no_org(client: httpx.AsyncClient, make_org: Any) -> None:
    a = await make_org("A")
    b = await make_org("B")
    address = email()
    assert (await add_account(a, address)).status_code == 201
    assert (await me(client, await sign_in(client, address, PASSWORD)))["org_id"] == a.org_id
    # Naming the organization works too; naming another one (or an unknown one) is a wrong
    # password like any other.
    r = await sign_in(client, address, PASSWORD, org_id=a.org_id)
    assert (await me(client, r))["org_id"] == a.org_id
    for org_id in (b.org_id, str(uuid.uuid4())):
        r = await sign_in(client, address, PASSWORD, org_id=org_id)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_credentials"
    r = await sign_in(client, address, PASSWORD, org_id="not-a-uuid")
    assert r.status_code == 422


async def test_same_password_in_two_orgs_asks_for_the_org(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    a = await make_org("Alpha")
    b = await make_org("Beta")
    c = await make_org("Gamma")
    address = email()
    for org in (a, b):
        assert (await add_account(org, address)).status_code == 201
    assert (await add_account(c, address, password=OTHER_PASSWORD)).status_code == 201

    r = await sign_in(client, address, PASSWORD)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "organization_required"
    # Only the organizations the caller proved they can enter: not Gamma.
    assert error["details"] == {
        "organizations": [{"id": a.org_id, "name": "Alpha"}, {"id": b.org_id, "name": "Beta"}]
    }
    for org in (a, b):
        r = await sign_in(client, address.upper(), PASSWORD, org_id=org.org_id)
        assert (await me(client, r))["org_id"] == org.org_id
    # Gamma's password opens Gamma's account alone: no question asked.
    assert (await me(client, await sign_in(client, address, OTHER_PASSWORD)))["org_id"] == (
        c.org_id
    )


async def test_different_passwords_open_the_matching_account(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    a = await make_org("A")
    b = await make_org("B")
    address = email()
    assert (await add_account(a, address)).status_code == 201
    assert (await add_account(b, address, password=OTHER_PASSWORD)).status_code == 201
    assert (await me(client, await sign_in(client, address, PASSWORD)))["org_id"] == a.org_id
    assert (await me(client, await sign_in(client, address, OTHER_PASSWORD)))["org_id"] == (
        b.org_id
    )
    # A's password does not open B's account even when B is named.
    r = await sign_in(client, address, PASSWORD, org_id=b.org_id)
    assert r.status_code == 401


async def test_a_wrong_password_says_nothing_about_accounts(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    a = await make_org("A")
    b = await make_org("B")
    address = email()
    for org in (a, b):
        assert (await add_account(org, address)).status_code == 201
    answers = [
        await sign_in(client, address, "wrong-password"),  # two accounts
        await sign_in(client, a.admin.email, "wrong-password"),  # one account
        await sign_in(client, email(), "wrong-password"),  # none
    ]
    bodies = [(r.status_code, r.json()["error"]["code"], r.json()["error"]["message"])
              for r in answers]  # fmt: skip
    assert bodies == [(401, "invalid_credentials", "Email or password is wrong.")] * 3


async def test_deactivated_accounts_are_not_candidates(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    a = await make_org("A")
    b = await make_org("B")
    address = email()
    assert (await add_account(a, address)).status_code == 201
    r = await add_account(b, address)
    assert r.status_code == 201
    r = await client.patch(
        f"/v1/users/{r.json()['id']}", json={"is_active": False}, headers=b.admin.headers
    )
    assert r.status_code == 200
    # B's account is deactivated: the same password opens A's alone, without a question.
    assert (await me(client, await sign_in(client, address, PASSWORD)))["org_id"] == a.org_id
    r = await sign_in(client, address, PASSWORD, org_id=b.org_id)
    assert r.status_code == 401


async def test_accounts_past_the_bound_sign_in_by_naming_their_org(
    client: httpx.AsyncClient, make_org: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(auth_service, "MAX_SIGN_IN_ACCOUNTS", 1)
    a = await make_org("A")
    b = await make_org("B")
    address = email()
    ids = {}
    for org, password in ((a, PASSWORD), (b, OTHER_PASSWORD)):
        r = await add_account(org, address, password=password)
        assert r.status_code == 201
        ids[org.org_id] = r.json()["id"]
    # Only the first account (by id) is checked without org_id...
    first, second = sorted(ids.items(), key=lambda item: item[1])
    first_password = PASSWORD if first[0] == a.org_id else OTHER_PASSWORD
    second_password = OTHER_PASSWORD if first_password == PASSWORD else PASSWORD
    assert (await me(client, await sign_in(client, address, first_password)))["id"] == first[1]
    assert (await sign_in(client, address, second_password)).status_code == 401
    # ...and naming the organization reaches the other.
    r = await sign_in(client, address, second_password, org_id=second[0])
    assert (await me(client, r))["id"] == second[1]
