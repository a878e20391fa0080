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


async def test_create_stage_sends_location_and_honours_idempotency_key(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    body = {"key": "renewal", "name": "Renewal", "skills": [{"key": "upsell", "name": "Upsell"}]}
    headers = {**org.admin.headers, "Idempotency-Key": "stage-renewal"}
    r = await client.post("/v1/stages", json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/v1/stages/renewal"
    assert "idempotent-replayed" not in r.headers
    got = await client.get(r.headers["location"], headers=org.admin.headers)
    assert got.status_code == 200
    assert got.json() == r.json()

    replay = await client.post("/v1/stages", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.json() == r.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == "/v1/stages/renewal"
    keys = [s["key"] for s in (await client.get("/v1/stages", headers=org.admin.headers)).json()]
    assert keys.count("renewal") == 1

    r = await client.post("/v1/stages", json={**body, "name": "Other"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_key_reused"
    r = await client.post("/v1/stages", json=body, headers=org.admin.headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "stage_exists"


async def test_get_one_stage(client: httpx.AsyncClient, make_org: Any) -> None:
    org = await make_org()
    other = await make_org("Other")
    rep = await org.add_user("rep")
    await client.post(
        "/v1/stages", json={"key": "renewal", "name": "Renewal"}, headers=other.admin.headers
    )
    r = await client.get("/v1/stages/closing", headers=rep.headers)
    assert r.status_code == 200
    assert r.json()["key"] == "closing"
    assert r.json()["skills"][0]["key"] == "value_roi"
    # Another org's stage is not found.
    r = await client.get("/v1/stages/renewal", headers=rep.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
