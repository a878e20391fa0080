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


async def test_admin_edits_talk_tracks_and_they_survive_other_skill_edits(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep = await org.add_user("rep")
    r = await client.get("/v1/stages/closing", headers=rep.headers)
    assert {
        (s["phrases_to_use"], s["phrases_to_avoid"]) == ([], []) for s in r.json()["skills"]
    } == {True}

    skills = [
        {
            "key": "value_roi",
            "name": "Value",
            "phrases_to_use": ["  return on   investment ", "payback period"],
            "phrases_to_avoid": ["cheap"],
        },
        {"key": "urgency", "name": "Urgency"},
    ]
    r = await client.patch("/v1/stages/closing", json={"skills": skills}, headers=org.admin.headers)
    assert r.status_code == 200, r.text
    value = r.json()["skills"][0]
    # Stored as given, with spacing folded.
    assert value["phrases_to_use"] == ["return on investment", "payback period"]
    assert value["phrases_to_avoid"] == ["cheap"]
    assert r.json()["skills"][1]["phrases_to_use"] == []

    # Renaming and reordering without the phrase fields keeps each skill's talk track; a
    # list that is sent replaces the stored one.
    r = await client.patch(
        "/v1/stages/closing",
        json={
            "skills": [
                {"key": "urgency", "name": "Urgency", "phrases_to_avoid": ["no rush"]},
                {"key": "value_roi", "name": "Value and ROI"},
            ]
        },
        headers=org.admin.headers,
    )
    assert r.status_code == 200, r.text
    got = (await client.get("/v1/stages/closing", headers=rep.headers)).json()["skills"]
    assert [(s["key"], s["phrases_to_use"], s["phrases_to_avoid"]) for s in got] == [
        ("urgency", [], ["no rush"]),
        ("value_roi", ["return on investment", "payback period"], ["cheap"]),
    ]

    # A new stage may carry talk tracks from the start.
    r = await client.post(
        "/v1/stages",
        json={
            "key": "renewal",
            "name": "Renewal",
            "skills": [{"key": "upsell", "name": "Upsell", "phrases_to_use": ["next year"]}],
        },
        headers=org.admin.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["skills"][0]["phrases_to_use"] == ["next year"]


async def test_talk_track_bounds_and_who_may_edit_them(
    client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    coach = await org.add_user("coach")
    rep = await org.add_user("rep")
    skill = {"key": "value_roi", "name": "Value"}
    for actor in (coach, rep):
        r = await client.patch(
            "/v1/stages/closing",
            json={"skills": [{**skill, "phrases_to_use": ["return on investment"]}]},
            headers=actor.headers,
        )
        assert r.status_code == 403, r.text
    bad = [
        {"phrases_to_use": ["x" * 101]},
        {"phrases_to_use": [f"phrase {i}" for i in range(51)]},
        {"phrases_to_avoid": ["   "]},
        {"phrases_to_avoid": ["?!"]},
        {"phrases_to_use": ["ROI", "roi"]},
        {"phrases_to_use": ["cheap"], "phrases_to_avoid": ["Cheap"]},
    ]
    for phrases in bad:
        r = await client.patch(
            "/v1/stages/closing", json={"skills": [{**skill, **phrases}]}, headers=org.admin.headers
        )
        assert r.status_code == 422, phrases
        assert r.json()["error"]["code"] == "validation_error"
    # The limits themselves are fine.
    r = await client.patch(
        "/v1/stages/closing",
        json={
            "skills": [
                {**skill, "phrases_to_use": [f"phrase {i}" for i in range(49)] + ["y" * 100]}
            ]
        },
        headers=org.admin.headers,
    )
    assert r.status_code == 200, r.text
    got = (await client.get("/v1/stages/closing", headers=coach.headers)).json()["skills"]
    assert len(got[0]["phrases_to_use"]) == 50
