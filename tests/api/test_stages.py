from __future__ import annotations

from typing import Any

import httpx


async def test_new_org_has_default_stages(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    r = await client.get("/v1/stages", headers=rep.headers)
    assert r.status_code == 200
    stages = r.json()
    assert [s["key"] for s in stages] == ["prospecting", "contact_to_trial", "closing"]
    assert [s["position"] for s in stages] == [0, 1, 2]
    closing = stages[2]
    assert [k["key"] for k in closing["skills"]] == [
        "value_roi",
        "urgency",
        "follow_up",
        "decision_makers",
    ]
    assert all({"key", "name"} <= set(k) for k in closing["skills"])


async def test_admin_edits_taxonomy(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    other = await make_org("Other")
    r = await client.post(
        "/v1/stages",
        json={"key": "renewal", "name": "Renewal", "skills": [{"key": "upsell", "name": "Upsell"}]},
        headers=org.admin.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["position"] == 3

    r = await client.patch(
        "/v1/stages/closing",
        json={
            "name": "Closing",
            "position": 9,
            "skills": [
                {"key": "urgency", "name": "Urgency!"},
                {"key": "negotiation", "name": "Negotiation"},
            ],
        },
        headers=org.admin.headers,
    )
    assert r.status_code == 200, r.text
    assert [s["key"] for s in r.json()["skills"]] == ["urgency", "negotiation"]

    keys = [s["key"] for s in (await client.get("/v1/stages", headers=org.admin.headers)).json()]
    assert keys == ["prospecting", "contact_to_trial", "renewal", "closing"]
    # The other org's taxonomy is untouched.
    other_keys = [
        s["key"] for s in (await client.get("/v1/stages", headers=other.admin.headers)).json()
    ]
    assert other_keys == ["prospecting", "contact_to_trial", "closing"]


async def test_stage_errors(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    coach = await org.add_user("coach")
    r = await client.post("/v1/stages", json={"key": "x", "name": "X"}, headers=coach.headers)
    assert r.status_code == 403
    r = await client.post(
        "/v1/stages", json={"key": "closing", "name": "X"}, headers=org.admin.headers
    )
    assert r.status_code == 409
    r = await client.post(
        "/v1/stages", json={"key": "Bad Key", "name": "X"}, headers=org.admin.headers
    )
    assert r.status_code == 422
    r = await client.post(
        "/v1/stages",
        json={
            "key": "dup",
            "name": "X",
            "skills": [{"key": "a", "name": "A"}, {"key": "a", "name": "B"}],
        },
        headers=org.admin.headers,
    )
    assert r.status_code == 422
    r = await client.patch("/v1/stages/nope", json={"name": "X"}, headers=org.admin.headers)
    assert r.status_code == 404
