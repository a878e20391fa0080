"""Exemplar curation, the ranked library, automatic and manual links, tenant isolation."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.clips.models import Clip
from app.exemplars.models import ExemplarEvent
from app.exemplars.schemas import ExemplarOut
from app.exemplars.scoring import exemplar_score
from app.exemplars.tasks import refresh_exemplar_scores
from app.pagination import Page
from app.playback.signing import parse_token
from tests.api.feedback_helpers import playable_clip, post_feedback
from tests.conftest import task_context
from tests.helpers.api import create_clip, exemplar_clip, mark
from tests.helpers.sql_count import queries, statements_during


async def links(client: httpx.AsyncClient, actor: Any, clip_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/clips/{clip_id}/exemplars", headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_curation_permissions_and_history(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top, coach = (
        await org.add_user("rep"), await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    reps_clip = await playable_clip(app, client, rep, stage="closing", skills=[])
    tops_clip = await playable_clip(app, client, top, stage="closing", skills=["urgency"])

    assert (await mark(client, rep, reps_clip)).status_code == 403  # reps do not curate
    assert (await mark(client, top, reps_clip)).status_code == 403  # not their own clip
    r = await mark(client, top, tops_clip, note="Creates urgency without pressure")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["endorsed"] is False and body["note"] == "Creates urgency without pressure"
    assert body["clip"]["id"] == tops_clip and body["clip"]["owner"]["id"] == top.id
    assert body["clip"]["skills"] == ["urgency"] and body["clip"]["duration_ms"] == 10_000
    # A coach re-marking endorses it and keeps the note unless a new one is given.
    r = await mark(client, coach, tops_clip)
    assert r.json()["endorsed"] is True and r.json()["note"] == "Creates urgency without pressure"
    assert (await mark(client, org.admin, reps_clip)).status_code == 200
    clip = (await client.get(f"/v1/clips/{reps_clip}", headers=rep.headers)).json()
    assert clip["is_exemplar"] is True

    pending = (await create_clip(client, top))["clip"]["id"]
    r = await mark(client, coach, pending)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_ready"
    assert (await mark(client, coach, reps_clip, note="x" * 1001)).status_code == 422

    url = f"/v1/clips/{reps_clip}/exemplar"
    assert (await client.delete(url, headers=rep.headers)).status_code == 403
    for _ in range(2):  # idempotent
        assert (await client.delete(url, headers=coach.headers)).status_code == 204
    clip = (await client.get(f"/v1/clips/{reps_clip}", headers=rep.headers)).json()
    assert clip["is_exemplar"] is False

    async with app.state.sessionmaker() as session:
        history = (
            await session.execute(
                select(ExemplarEvent.action, ExemplarEvent.actor_id)
                .where(ExemplarEvent.clip_id == uuid.UUID(reps_clip))
                .order_by(ExemplarEvent.created_at, ExemplarEvent.id)
            )
        ).all()
    assert [(a.value, str(u)) for a, u in history] == [
        ("marked", org.admin.id), ("unmarked", coach.id),
    ]  # fmt: skip


def test_score_formula() -> None:
    base = {"endorsed": False, "helpful": 0, "completion_rate": 0.0, "viewers": 0, "age_days": 0}
    assert exemplar_score(**base) == 0.1  # only recency
    assert exemplar_score(**base | {"age_days": 90}) == 0.05
    best = exemplar_score(
        endorsed=True, helpful=10_000, completion_rate=1.0, viewers=10_000, age_days=0
    )
    assert best == 1.0
    assert exemplar_score(**base | {"endorsed": True}) == 0.4
    # Each signal raises the score; counts saturate.
    for key, low, high in (("helpful", 1, 20), ("viewers", 1, 50), ("age_days", 30, 1)):
        assert exemplar_score(**base | {key: high}) > exemplar_score(**base | {key: low})
    assert exemplar_score(**base | {"helpful": 10}) == round(0.1 + 0.25 * (1 - 2.718281828**-1), 4)
    # One viewer who finished counts a fifth of the completion term; five or more count fully.
    one = exemplar_score(**base | {"viewers": 1, "completion_rate": 1.0})
    five = exemplar_score(**base | {"viewers": 5, "completion_rate": 1.0})
    assert round(one - exemplar_score(**base | {"viewers": 1}), 4) == 0.04
    assert round(five - exemplar_score(**base | {"viewers": 5}), 4) == 0.2


async def test_claimed_completions_do_not_raise_the_completion_rate(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    """The probe: one account posting `completed: true, watched_ms: 0` again and again."""
    org = await make_org()
    top, coach = await org.add_user("top_performer"), await org.add_user("coach")
    honest, cheat = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await exemplar_clip(app, client, top, coach)

    async def view(actor: Any, **body: Any) -> None:
        body = {"position_ms": 10_000, "watched_ms": 0, "completed": True} | body
        r = await client.post(f"/v1/clips/{clip_id}/views", json=body, headers=actor.headers)
        assert r.status_code == 200, r.text

    async def stats() -> tuple[int, float]:
        await refresh_exemplar_scores(task_context(app))
        r = await client.get("/v1/exemplars", headers=honest.headers)
        assert r.status_code == 200, r.text
        (item,) = r.json()["items"]
        scored = exemplar_score(
            endorsed=True,
            helpful=0,
            completion_rate=item["completion_rate"],
            viewers=item["view_count"],
            age_days=0,
        )
        assert item["score"] == pytest.approx(scored, abs=1e-3)
        return item["view_count"], item["completion_rate"]

    await view(honest, watched_ms=5000, completed=False)
    assert await stats() == (1, 0.0)
    for _ in range(5):
        await view(cheat)
    assert await stats() == (2, 0.0)  # one viewer more, and that is all
    # A real watch (90 % of the 10 s, and the end) is a completion.
    await view(cheat, watched_ms=9000)
    assert await stats() == (2, 0.5)


async def test_library_ranking_for_a_known_data_set(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    top, coach = await org.add_user("top_performer", name="Tina"), await org.add_user("coach")
    fans = [await org.add_user("rep") for _ in range(6)]
    endorsed = await exemplar_clip(app, client, top, coach, title="Endorsed close")
    popular = await exemplar_clip(app, client, top, top, title="Popular close", skills=["urgency"])
    quiet = await exemplar_clip(app, client, top, top, title="Quiet close")
    opener = await exemplar_clip(
        app, client, top, coach, title="Cold opener", stage="prospecting", skills=["persistence"]
    )
    # The popular one: six viewers who finished it and 15 helpful marks on its feedback.
    for fan in fans:
        r = await client.post(
            f"/v1/clips/{popular}/views",
            json={"position_ms": 10_000, "watched_ms": 10_000, "completed": True},
            headers=fan.headers,
        )
        assert r.status_code == 200
    for _ in range(3):
        item = (await post_feedback(client, top, popular)).json()
        for fan in fans[:5]:
            await client.post(f"/v1/feedback/{item['id']}/reactions/helpful", headers=fan.headers)
    await client.post(
        f"/v1/clips/{quiet}/views",
        json={"position_ms": 100, "watched_ms": 100, "completed": False},
        headers=fans[0].headers,
    )
    await refresh_exemplar_scores(task_context(app))

    r = await client.get("/v1/exemplars", params={"stage": "closing"}, headers=fans[0].headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["clip"]["title"] for i in items] == ["Popular close", "Endorsed close", "Quiet close"]
    by_title = {i["clip"]["title"]: i for i in items}
    pop = by_title["Popular close"]
    assert (pop["view_count"], pop["completion_rate"], pop["helpful_count"]) == (6, 1.0, 15)
    assert pop["score"] == pytest.approx(
        exemplar_score(endorsed=False, helpful=15, completion_rate=1.0, viewers=6, age_days=0),
        abs=1e-3,
    )
    assert by_title["Endorsed close"]["score"] == pytest.approx(0.4, abs=1e-3)
    assert by_title["Quiet close"]["view_count"] == 1
    assert pop["note"] == "Watch the ROI framing" and pop["clip"]["owner"]["name"] == "Tina"

    everything = (await client.get("/v1/exemplars", headers=fans[0].headers)).json()["items"]
    assert {i["clip"]["id"] for i in everything} == {endorsed, popular, quiet, opener}
    by_skill = await client.get("/v1/exemplars?skill=urgency", headers=fans[0].headers)
    assert [i["clip"]["id"] for i in by_skill.json()["items"]] == [popular]
    by_text = await client.get("/v1/exemplars?q=OPENER", headers=fans[0].headers)
    assert [i["clip"]["id"] for i in by_text.json()["items"]] == [opener]
    assert (await client.get("/v1/exemplars?skill=a%22b", headers=top.headers)).status_code == 422
    first = (await client.get("/v1/exemplars?stage=closing&limit=2", headers=top.headers)).json()
    rest = await client.get(
        f"/v1/exemplars?stage=closing&limit=2&cursor={first['next_cursor']}", headers=top.headers
    )
    assert [i["clip"]["id"] for i in first["items"] + rest.json()["items"]] == [
        popular, endorsed, quiet,
    ]  # fmt: skip


async def test_auto_links_follow_the_library_and_the_pitch(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top, coach = (
        await org.add_user("rep"), await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    pitch = await playable_clip(app, client, rep, stage="closing", skills=["value_roi", "urgency"])
    shares_both = await exemplar_clip(app, client, top, top, skills=["value_roi", "urgency"])
    shares_none = await exemplar_clip(app, client, top, coach, skills=["follow_up"])  # endorsed
    opener = await exemplar_clip(app, client, top, coach, stage="prospecting", skills=[])
    private = await exemplar_clip(app, client, top, top, visibility="private")

    got = await links(client, rep, pitch)
    # Skill overlap beats score; the private exemplar is invisible to the rep.
    assert [x["exemplar"]["clip"]["id"] for x in got] == [shares_both, shares_none]
    assert got[0]["source"] == "auto"
    assert got[0]["reason"] == "same stage: closing; shares skills: value_roi, urgency"
    assert got[1]["reason"] == "same stage: closing"
    assert got[1]["score"] > got[0]["score"]
    # A coach sees the private one too (same overlap as shares_both, lower score).
    assert private in [x["exemplar"]["clip"]["id"] for x in await links(client, coach, pitch)]

    # A newly marked exemplar appears for existing pitches.
    newcomer = await exemplar_clip(app, client, top, top, skills=["urgency"])
    assert [x["exemplar"]["clip"]["id"] for x in await links(client, rep, pitch)] == [
        shares_both, newcomer, shares_none,
    ]  # fmt: skip
    # Unmarked or deleted exemplars disappear.
    await client.delete(f"/v1/clips/{shares_both}/exemplar", headers=top.headers)
    await client.delete(f"/v1/clips/{newcomer}", headers=top.headers)
    assert [x["exemplar"]["clip"]["id"] for x in await links(client, rep, pitch)] == [shares_none]
    # Changing the pitch's stage changes its links.
    r = await client.patch(
        f"/v1/clips/{pitch}", json={"stage": "prospecting", "skills": []}, headers=rep.headers
    )
    assert r.status_code == 200
    assert [x["exemplar"]["clip"]["id"] for x in await links(client, rep, pitch)] == [opener]
    # An exemplar never links to itself.
    assert [x["exemplar"]["clip"]["id"] for x in await links(client, rep, opener)] == []


async def test_manual_links_come_first_and_survive(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Globex")
    rep, peer, top, coach = (
        await org.add_user("rep"), await org.add_user("rep"),
        await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    pitch = await playable_clip(app, client, rep, stage="closing", skills=["value_roi"])
    best = await exemplar_clip(app, client, top, coach)
    second = await exemplar_clip(app, client, top, coach)
    chosen = await exemplar_clip(app, client, top, top, stage="prospecting", skills=[])
    url = f"/v1/clips/{pitch}/exemplars"

    r = await client.post(url, json={"exemplar_id": chosen}, headers=peer.headers)
    assert r.status_code == 403
    r = await client.post(url, json={"exemplar_id": chosen}, headers=rep.headers)
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "manual" and r.json()["reason"] == "chosen by rep"
    again = await client.post(url, json={"exemplar_id": chosen}, headers=rep.headers)
    assert again.status_code == 200
    not_exemplar = await playable_clip(app, client, top)
    theirs = await exemplar_clip(app, client, other.admin, other.admin)
    for target in (not_exemplar, theirs, str(uuid.uuid4())):
        r = await client.post(url, json={"exemplar_id": target}, headers=rep.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "not_an_exemplar"
    r = await client.post(url, json={"exemplar_id": pitch}, headers=coach.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "self_link"

    got = await links(client, rep, pitch)
    assert [(x["exemplar"]["clip"]["id"], x["source"]) for x in got] == [
        (chosen, "manual"), (best, "auto"), (second, "auto"),
    ]  # fmt: skip
    # The library changes; the manual link stays first.
    await client.delete(f"/v1/clips/{best}/exemplar", headers=coach.headers)
    newcomer = await exemplar_clip(app, client, top, coach)
    got = await links(client, rep, pitch)
    assert got[0]["exemplar"]["clip"]["id"] == chosen
    assert {x["exemplar"]["clip"]["id"] for x in got[1:]} == {second, newcomer}

    assert (await client.delete(f"{url}/{chosen}", headers=peer.headers)).status_code == 403
    assert (await client.delete(f"{url}/{chosen}", headers=coach.headers)).status_code == 204
    assert (await client.delete(f"{url}/{chosen}", headers=coach.headers)).status_code == 404
    assert chosen not in [x["exemplar"]["clip"]["id"] for x in await links(client, rep, pitch)]


async def test_other_orgs_exemplars_never_appear(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org, other = await make_org(), await make_org("Globex")
    rep = await org.add_user("rep")
    pitch = await playable_clip(app, client, rep, stage="closing", skills=["value_roi"])
    theirs = await exemplar_clip(app, client, other.admin, other.admin)
    await post_feedback(client, other.admin, theirs, skill="value_roi")

    assert (await client.get("/v1/exemplars", headers=rep.headers)).json()["items"] == []
    assert await links(client, rep, pitch) == []
    kit = (await client.get("/v1/prep?stage=closing", headers=rep.headers)).json()
    assert kit["exemplars"] == [] and kit["tips"] == []
    assert (await mark(client, rep, theirs)).status_code == 404
    r = await client.get(f"/v1/clips/{theirs}/exemplars", headers=rep.headers)
    assert r.status_code == 404


async def test_manual_link_sends_its_location_and_takes_an_idempotency_key(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    rep, top, coach = (
        await org.add_user("rep"), await org.add_user("top_performer"), await org.add_user("coach"),
    )  # fmt: skip
    pitch = await playable_clip(app, client, rep, stage="closing", skills=["value_roi"])
    chosen = await exemplar_clip(app, client, top, coach)
    other = await exemplar_clip(app, client, top, coach)
    url = f"/v1/clips/{pitch}/exemplars"
    location = f"{url}/{chosen}"

    headers = rep.headers | {"Idempotency-Key": "link-1"}
    first = await client.post(url, json={"exemplar_id": chosen}, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["Location"] == location and "Idempotent-Replayed" not in first.headers
    # A retry with the key: the first answer (201, same body and Location), marked replayed.
    again = await client.post(url, json={"exemplar_id": chosen}, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Location"] == location and again.headers["Idempotent-Replayed"] == "true"
    reused = await client.post(url, json={"exemplar_id": other}, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    # Without a key, linking again is a 200 naming the same link.
    plain = await client.post(url, json={"exemplar_id": chosen}, headers=rep.headers)
    assert plain.status_code == 200 and plain.headers["Location"] == location
    got = await links(client, rep, pitch)
    assert [x["source"] for x in got].count("manual") == 1
    # The Location is the link DELETE removes.
    assert (await client.delete(location, headers=rep.headers)).status_code == 204
    assert [x["source"] for x in await links(client, rep, pitch)] == ["auto", "auto"]


async def _with_poster(app: Any, clip_id: str) -> None:
    async with app.state.sessionmaker.begin() as session:
        clip = await session.get(Clip, uuid.UUID(clip_id))
        assert clip is not None and clip.media
        media = dict(clip.media) | {"poster": "poster.jpg"}
        await session.execute(update(Clip).where(Clip.id == clip.id).values(media=media))


async def test_library_items_carry_a_short_lived_poster_and_the_duration(
    app: Any, client: httpx.AsyncClient, make_org: Any, settings: Any
) -> None:
    org = await make_org()
    top, coach, rep = (
        await org.add_user("top_performer"), await org.add_user("coach"), await org.add_user("rep"),
    )  # fmt: skip
    with_poster = await exemplar_clip(app, client, top, coach, title="With poster")
    await exemplar_clip(app, client, top, coach, title="Without poster")
    await _with_poster(app, with_poster)
    assert settings.poster_url_ttl_s < settings.playback_ttl_s

    before = int(time.time())
    r = await client.get("/v1/exemplars", headers=rep.headers)
    after = int(time.time())
    assert r.status_code == 200, r.text
    Page[ExemplarOut].model_validate(r.json())
    items = {i["clip"]["title"]: i["clip"] for i in r.json()["items"]}
    assert items["Without poster"]["poster_url"] is None
    assert {c["duration_ms"] for c in items.values()} == {10_000}
    poster = items["With poster"]["poster_url"]
    prefix = "http://testserver/v1/play/"
    assert poster.startswith(prefix) and poster.endswith("/poster.jpg")
    token = parse_token(poster.removeprefix(prefix).split("/")[0])
    assert str(token.clip_id) == with_poster
    # The list's lifetime (poster_url_ttl_s), not a player's (playback_ttl_s).
    assert before + settings.poster_url_ttl_s <= token.exp <= after + settings.poster_url_ttl_s
    # It works without Authorization: a redirect to the image.
    assert (await client.get(poster.removeprefix("http://testserver"))).status_code == 302
    # The clip's links carry the same kind of poster.
    pitch = await playable_clip(app, client, rep, stage="closing", skills=["value_roi"])
    linked = {x["exemplar"]["clip"]["id"]: x for x in await links(client, rep, pitch)}
    linked_poster = linked[with_poster]["exemplar"]["clip"]["poster_url"]
    exp = parse_token(linked_poster.removeprefix(prefix).split("/")[0]).exp
    assert exp <= int(time.time()) + settings.poster_url_ttl_s


async def test_library_statement_count_stays_flat(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org = await make_org()
    coach, rep = await org.add_user("coach"), await org.add_user("rep")
    owners = [await org.add_user("top_performer") for _ in range(4)]

    async def library_reads() -> tuple[int, list[str]]:
        with statements_during(app) as statements:
            r = await client.get("/v1/exemplars", params={"limit": 50}, headers=rep.headers)
        assert r.status_code == 200, r.text
        assert all(i["clip"]["poster_url"] for i in r.json()["items"])
        return len(r.json()["items"]), queries(statements)

    for i in range(20):
        clip_id = await exemplar_clip(app, client, owners[i % 4], coach, title=f"Close {i}")
        await _with_poster(app, clip_id)
        if i == 1:
            small, small_reads = await library_reads()
    large, large_reads = await library_reads()
    assert (small, large) == (2, 20)
    # The page with each exemplar's clip and owner: whatever its size (the caller aside).
    assert len(small_reads) == len(large_reads) == 1, large_reads
