"""A play token is bound to the viewer it was issued to: every `/v1/play/{token}/...` route
answers 404 within `playback_access_recheck_s` once that viewer may no longer see the clip
(made private, review request declined, account deactivated, role changed), while the
owner's and other viewers' tokens keep working; what those routes hand out that nothing can
revoke (redirect targets, the storyboard's sprite URL) lives briefly. On local storage and on
S3 (moto), SQLite and PostgreSQL.

The app is built with `playback_access_recheck_s=1`, and each test waits for the 404 with
`eventually()`."""

from __future__ import annotations

import calendar
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from app.clips.models import Clip, ClipStatus
from app.config import Settings
from app.playback import signing
from tests.conftest import TEST_SECRET, OrgCtx
from tests.helpers.api import create_clip, request_review
from tests.helpers.sql_count import statements_during
from tests.helpers.waiting import eventually
from tests.storage.helpers import chunked

RECHECK_S = 1
BASE = "http://testserver"


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, make_settings: Any) -> Settings:
    overrides: dict[str, Any] = {"playback_access_recheck_s": RECHECK_S}
    if request.param == "s3":
        overrides.update(
            storage="s3",
            s3_endpoint_url=request.getfixturevalue("s3_endpoint"),
            s3_bucket=request.getfixturevalue("s3_bucket"),
        )
    return make_settings(**overrides)  # type: ignore[no-any-return]


@pytest.fixture
async def outside() -> AsyncIterator[httpx.AsyncClient]:
    """For redirect targets on moto (real HTTP on loopback; no proxy from the environment)."""
    async with httpx.AsyncClient(trust_env=False, timeout=30) as c:
        yield c


VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:05.000\nstoryboard.jpg#xywh=0,0,160,90\n"
FILES = {
    "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=640x360\nv0/index.m3u8\n",
    "v0/index.m3u8": (
        b'#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI="init.mp4"\n'
        b"#EXTINF:4.0,\nseg_00001.m4s\n#EXT-X-ENDLIST\n"
    ),
    "v0/init.mp4": b"init-bytes",
    "v0/seg_00001.m4s": b"segment-bytes",
    "download.mp4": b"mp4-bytes",
    "poster.jpg": b"\xff\xd8\xffposter",
    "storyboard.jpg": b"\xff\xd8\xffsprite",
    "storyboard.vtt": VTT.encode(),
}


async def published_clip(app: Any, client: httpx.AsyncClient, owner: Any, **extra: Any) -> str:
    """A ready clip of ``owner`` with every playback file stored."""
    clip_id: str = (await create_clip(client, owner, **extra))["clip"]["id"]
    prefix = f"orgs/{owner.org_id}/clips/{clip_id}/media/1-1/"
    for name, data in FILES.items():
        await app.state.storage.put_stream(prefix + name, chunked(data))
    media = {
        "version": "1-1", "prefix": prefix, "master": "master.m3u8",
        "variants": [{"name": "v0", "width": 640, "height": 360, "bandwidth": 1,
                      "codecs": "x", "playlist": "v0/index.m3u8"}],
        "download": "download.mp4", "poster": "poster.jpg",
        "storyboard": "storyboard.jpg", "storyboard_vtt": "storyboard.vtt",
    }  # fmt: skip
    async with app.state.sessionmaker.begin() as session:
        await session.execute(
            update(Clip)
            .where(Clip.id == uuid.UUID(clip_id))
            .values(status=ClipStatus.ready, duration_ms=5000, media=media)
        )
    return clip_id


@dataclass
class Player:
    """Every play route of one token, as a player and a downloader would fetch them."""

    token: str
    routes: dict[str, int]  # path → its status while access holds

    @classmethod
    async def of(cls, client: httpx.AsyncClient, actor: Any, clip_id: str) -> Player:
        r = await client.get(f"/v1/clips/{clip_id}/playback", headers=actor.headers)
        assert r.status_code == 200, r.text
        urls = r.json()
        root = urls["hls_url"].removeprefix(BASE).removesuffix("master.m3u8")
        token = root.split("/")[3]
        return cls(
            token=token,
            routes={
                root + "master.m3u8": 200,
                root + "v0/index.m3u8": 200,
                root + "s/v0/init.mp4": 302,
                root + "s/v0/seg_00001.m4s": 302,
                urls["storyboard_url"].removeprefix(BASE): 200,
                urls["mp4_url"].removeprefix(BASE): 302,
                urls["poster_url"].removeprefix(BASE): 302,
            },
        )

    async def works(self, client: httpx.AsyncClient) -> None:
        for path, status in self.routes.items():
            r = await client.get(path)
            assert r.status_code == status, (path, r.status_code, r.text)

    async def first_answer(self, client: httpx.AsyncClient) -> int:
        return (await client.get(next(iter(self.routes)))).status_code

    async def stopped(self, client: httpx.AsyncClient) -> None:
        """Wait (at most a few recheck windows) until the token is refused, then every
        route answers 404 in the JSON envelope."""
        await eventually(
            lambda: self.first_answer(client),
            until=lambda status: status == 404,
            timeout=10 * RECHECK_S + 5,
            interval=0.05,
            what="the play routes to refuse the token",
        )
        for path in self.routes:
            r = await client.get(path)
            assert r.status_code == 404, (path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "not_found", r.text
            assert "request_id" in r.json()["error"]


async def test_making_the_clip_private_stops_other_viewers_tokens(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org: OrgCtx = await make_org()
    owner, viewer, coach = [await org.add_user(r) for r in ("rep", "rep", "coach")]
    clip_id = await published_clip(app, client, owner)
    mine, theirs, coachs = [await Player.of(client, a, clip_id) for a in (owner, viewer, coach)]
    for player in (mine, theirs, coachs):
        await player.works(client)
    assert theirs.token != mine.token  # one token per viewer

    r = await client.patch(
        f"/v1/clips/{clip_id}", json={"visibility": "private"}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    await theirs.stopped(client)
    # Still allowed: the owner, and a coach (who sees every clip of the org).
    await mine.works(client)
    await coachs.works(client)
    # And shared again: the same token plays again (it is the access that is checked).
    r = await client.patch(
        f"/v1/clips/{clip_id}", json={"visibility": "org"}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    await eventually(
        lambda: theirs.first_answer(client),
        until=lambda status: status == 200,
        timeout=10 * RECHECK_S + 5,
        interval=0.05,
        what="the viewer's token to play again",
    )
    await theirs.works(client)


async def test_declining_a_review_request_stops_the_reviewers_token(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org: OrgCtx = await make_org()
    owner, reviewer, other = [await org.add_user(r) for r in ("rep", "rep", "rep")]
    clip_id = await published_clip(app, client, owner, visibility="private")
    # Only the review request lets the reviewer see the private clip.
    r = await client.get(f"/v1/clips/{clip_id}/playback", headers=reviewer.headers)
    assert r.status_code == 404
    r = await request_review(client, owner, clip_id, reviewer)
    assert r.status_code == 201, r.text
    request_id = r.json()["id"]
    theirs, mine = [await Player.of(client, a, clip_id) for a in (reviewer, owner)]
    await theirs.works(client)

    r = await client.post(
        f"/v1/review-requests/{request_id}/decline",
        json={"reason": "No time this week"},
        headers=reviewer.headers,
    )
    assert r.status_code == 200, r.text
    await theirs.stopped(client)
    await mine.works(client)
    # Someone who never had access never had a token either.
    r = await client.get(f"/v1/clips/{clip_id}/playback", headers=other.headers)
    assert r.status_code == 404


async def test_deactivating_the_viewer_stops_only_their_tokens(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org: OrgCtx = await make_org()
    owner, viewer, colleague = [await org.add_user(r) for r in ("rep", "rep", "rep")]
    clip_id = await published_clip(app, client, owner)
    theirs, mine, colleagues = [
        await Player.of(client, a, clip_id) for a in (viewer, owner, colleague)
    ]
    await theirs.works(client)

    r = await client.patch(
        f"/v1/users/{viewer.id}", json={"is_active": False}, headers=org.admin.headers
    )
    assert r.status_code == 200, r.text
    await theirs.stopped(client)
    await mine.works(client)
    await colleagues.works(client)


async def test_a_role_change_that_loses_access_stops_the_token(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org: OrgCtx = await make_org()
    owner, coach = await org.add_user("rep"), await org.add_user("coach")
    clip_id = await published_clip(app, client, owner, visibility="private")
    theirs = await Player.of(client, coach, clip_id)  # coaches see private clips
    await theirs.works(client)
    r = await client.patch(f"/v1/users/{coach.id}", json={"role": "rep"}, headers=org.admin.headers)
    assert r.status_code == 200, r.text
    await theirs.stopped(client)


async def test_tokens_are_bound_to_their_viewer(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    org: OrgCtx = await make_org()
    owner, viewer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await published_clip(app, client, owner, visibility="private")
    mine = await Player.of(client, owner, clip_id)
    parsed = signing.parse_token(mine.token)
    assert parsed.viewer_id == uuid.UUID(owner.id) and str(parsed.clip_id) == clip_id
    # The viewer is signed: naming someone else breaks the signature.
    clip_hex, _owner_hex, rest = mine.token.split("-", 2)
    forged = f"{clip_hex}-{uuid.UUID(viewer.id).hex}-{rest}"
    r = await client.get(f"/v1/play/{forged}/master.m3u8")
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_signature"
    # A correctly signed token for a viewer who may not see the clip: 404.
    exp = int(time.time()) + 60
    theirs = signing.make_token(TEST_SECRET, uuid.UUID(clip_id), "1-1", exp, uuid.UUID(viewer.id))
    r = await client.get(f"/v1/play/{theirs}/master.m3u8")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # ... and for a user of another organization, even on a shared clip.
    stranger = await (await make_org("Globex")).add_user("coach")
    shared = await published_clip(app, client, owner)
    token = signing.make_token(TEST_SECRET, uuid.UUID(shared), "1-1", exp, uuid.UUID(stranger.id))
    assert (await client.get(f"/v1/play/{token}/master.m3u8")).status_code == 404


async def test_unbound_tokens_reach_shared_clips_only(
    app: Any, client: httpx.AsyncClient, make_org: Any
) -> None:
    """Tokens without a viewer (the format before viewers were bound) still verify, as a
    member of the clip's organization who is no one in particular: shared clips only."""
    org: OrgCtx = await make_org()
    owner = await org.add_user("rep")
    shared = await published_clip(app, client, owner)
    private = await published_clip(app, client, owner, visibility="private")
    exp = int(time.time()) + 60

    def unbound(clip_id: str) -> str:
        token = signing.make_token(TEST_SECRET, uuid.UUID(clip_id), "1-1", exp)
        assert signing.parse_token(token).viewer_id is None
        return f"/v1/play/{token}/master.m3u8"

    assert (await client.get(unbound(shared))).status_code == 200
    assert (await client.get(unbound(private))).status_code == 404
    r = await client.patch(
        f"/v1/clips/{shared}", json={"visibility": "private"}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    await eventually(
        lambda: client.get(unbound(shared)),
        until=lambda r: r.status_code == 404,
        timeout=10 * RECHECK_S + 5,
        interval=0.05,
        what="the unbound token to be refused",
    )


def _expiry(url: str) -> float:
    """When a URL nothing can revoke stops working: its signed `exp` (local `/v1/media`),
    or X-Amz-Date + X-Amz-Expires (S3; moto does not check, so the test reads it)."""
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Date" in query:
        signed = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
        return signed + int(query["X-Amz-Expires"][0])
    return float(query["exp"][0])


async def test_urls_that_bypass_the_token_live_briefly(
    app: Any,
    client: httpx.AsyncClient,
    outside: httpx.AsyncClient,
    make_org: Any,
    settings: Settings,
) -> None:
    """The play token lives `playback_ttl_s` (6 h) but re-checks; what its routes hand out
    that does not (redirect targets, the storyboard's sprite URL) lives at most
    `playback_s3_url_ttl_s` (segments: `playback_segment_url_ttl_s`) on both backends."""
    assert settings.playback_s3_url_ttl_s < settings.playback_ttl_s
    org: OrgCtx = await make_org()
    owner = await org.add_user("rep")
    clip_id = await published_clip(app, client, owner)
    player = await Player.of(client, owner, clip_id)
    paths = list(player.routes)
    start = time.time()
    handed_out: dict[str, tuple[str, int]] = {}  # what → (URL, its longest allowed life)
    for path in paths:
        r = await client.get(path)
        if r.status_code == 302:
            ttl = settings.playback_segment_url_ttl_s if "/s/" in path else None
            handed_out[path] = (r.headers["location"], ttl or settings.playback_s3_url_ttl_s)
        elif path.endswith(".vtt"):
            (sprite,) = [line.split("#")[0] for line in r.text.splitlines() if "#xywh=" in line]
            handed_out[path] = (sprite, settings.playback_s3_url_ttl_s)
            # Cached by the player no longer than the sprite URL inside lives.
            max_age = int(r.headers["cache-control"].split("=")[1])
            assert max_age <= settings.playback_s3_url_ttl_s
    assert len(handed_out) == 5  # init, segment, sprite, MP4, poster
    for path, (url, ttl) in handed_out.items():
        life = _expiry(url) - start
        assert 0 < life <= ttl + 2, (path, url, life)  # +2: the signers round up a second
        # And they work (on moto over real HTTP; on local storage through this app).
        got = await (outside.get(url) if url.startswith("http://127.") else client.get(url))
        assert got.status_code == 200, (path, url, got.text)
        assert got.content in FILES.values()


async def test_a_players_requests_read_access_once_per_window(
    app: Any, client: httpx.AsyncClient, make_org: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-check is cached per (viewer, clip): a player's many requests cost no access
    read between re-checks (the hot path stays a primary-key read and a dict lookup), and
    clearing the cache makes the next request read afresh."""
    # The server reads the setting per request: a long window, so nothing expires here.
    monkeypatch.setattr(app.state.settings, "playback_access_recheck_s", 60)
    org: OrgCtx = await make_org()
    owner, viewer = await org.add_user("rep"), await org.add_user("rep")
    clip_id = await published_clip(app, client, owner)
    player = await Player.of(client, viewer, clip_id)

    def access_reads(statements: list[str]) -> int:
        return sum("is_active" in s for s in statements)  # the viewer's account, read first

    with statements_during(app) as statements:
        await player.works(client)
        await player.works(client)
    assert access_reads(statements) == 1, statements

    r = await client.patch(
        f"/v1/clips/{clip_id}", json={"visibility": "private"}, headers=owner.headers
    )
    assert r.status_code == 200, r.text
    app.state.clip_states.access.clear()
    with statements_during(app) as statements:
        for path in player.routes:
            assert (await client.get(path)).status_code == 404, path
    assert access_reads(statements) == 1, statements  # refusals are cached too
