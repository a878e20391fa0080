"""GET /v1/people: the organization's active members, for anyone in it to pick from."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import OrgCtx


async def people(
    client: httpx.AsyncClient, actor: Any, **params: Any
) -> tuple[list[dict[str, Any]], str | None]:
    r = await client.get("/v1/people", params=params, headers=actor.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    return page["items"], page["next_cursor"]


async def all_pages(client: httpx.AsyncClient, actor: Any, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        items, cursor = await people(client, actor, **params, **extra)
        seen += items
        if not cursor:
            return seen


async def staffed_org(make_org: Any) -> tuple[OrgCtx, dict[str, Any]]:
    org: OrgCtx = await make_org("Acme")  # its admin is "Acme admin"
    actors = {
        "alice": await org.add_user("rep", name="Alice Adams"),
        "bob1": await org.add_user("coach", name="Bob Brown"),
        "bob2": await org.add_user("rep", name="Bob Brown"),
        "carol": await org.add_user("top_performer", name="Carol Chen"),
        "gone": await org.add_user("rep", name="Bob Gone"),
    }
    r = await org.client.patch(
        f"/v1/users/{actors['gone'].id}", json={"is_active": False}, headers=org.admin.headers
    )
    assert r.status_code == 200
    return org, actors


async def test_any_member_lists_active_people_of_their_org_only(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org, actors = await staffed_org(make_org)
    other = await make_org("Other")
    await other.add_user("rep", name="Bob Outsider")

    for caller in (actors["alice"], actors["carol"], actors["bob1"], org.admin):
        items, cursor = await people(client, caller)
        assert cursor is None
        ids = {p["id"] for p in items}
        assert ids == {org.admin.id, *(actors[k].id for k in ("alice", "bob1", "bob2", "carol"))}
        assert actors["gone"].id not in ids
        # Only what is shown next to someone's name: no email, no account details.
        assert all(set(p) == {"id", "name", "role"} for p in items)
    by_id = {p["id"]: p for p in items}
    assert by_id[actors["carol"].id] == {
        "id": actors["carol"].id,
        "name": "Carol Chen",
        "role": "top_performer",
    }

    outsiders, _ = await people(client, other.admin)
    assert {p["name"] for p in outsiders} == {"Other admin", "Bob Outsider"}
    assert (await client.get("/v1/people")).status_code == 401


async def test_search_by_name_and_role(client: httpx.AsyncClient, make_org: Any) -> None:
    _org, actors = await staffed_org(make_org)
    rep = actors["alice"]

    items, _ = await people(client, rep, q="bOb")
    assert [p["id"] for p in items] == sorted([actors["bob1"].id, actors["bob2"].id])
    items, _ = await people(client, rep, q="chen")
    assert [p["name"] for p in items] == ["Carol Chen"]
    items, _ = await people(client, rep, q="bob", role="coach")
    assert [p["id"] for p in items] == [actors["bob1"].id]
    items, _ = await people(client, rep, role="rep")
    assert {p["id"] for p in items} == {actors["alice"].id, actors["bob2"].id}
    # LIKE wildcards in q are plain characters.
    assert (await people(client, rep, q="%"))[0] == []
    assert (await people(client, rep, q="_"))[0] == []
    # Deactivated people are not found by name either.
    assert (await people(client, rep, q="gone"))[0] == []

    for bad in ({"role": "boss"}, {"q": ""}, {"limit": 0}, {"cursor": "%%%not-base64"}):
        r = await client.get("/v1/people", params=bad, headers=rep.headers)
        assert r.status_code == 422, bad
        assert r.json()["error"]["code"] in {"validation_error", "invalid_cursor"}


async def test_pages_follow_name_then_id(client: httpx.AsyncClient, make_org: Any) -> None:
    org, actors = await staffed_org(make_org)
    everyone = await all_pages(client, actors["alice"], limit=2)
    expected = sorted(
        [
            ("Acme admin", org.admin.id),
            ("Alice Adams", actors["alice"].id),
            ("Bob Brown", actors["bob1"].id),
            ("Bob Brown", actors["bob2"].id),
            ("Carol Chen", actors["carol"].id),
        ]
    )
    assert [(p["name"], p["id"]) for p in everyone] == expected
    # The page boundary falls between the two "Bob Brown"s: the id breaks the tie.
    first, cursor = await people(client, actors["alice"], limit=3)
    assert [p["id"] for p in first] == [e[1] for e in expected[:3]]
    rest, end = await people(client, actors["alice"], limit=3, cursor=cursor)
    assert [p["id"] for p in rest] == [e[1] for e in expected[3:]]
    assert end is None
