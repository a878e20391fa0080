"""Real HLS clients (ffmpeg, ffprobe) play signed playback URLs over HTTP, on local storage
and on S3; every URL in a served playlist is absolute and fetchable (segments through a
redirect minted per fetch, so a paused player resumes after any pause); tampered, expired,
cross-clip and deleted-clip URLs stop working."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from app.clips.models import Clip
from app.db import make_engine
from app.playback import signing
from tests.conftest import TEST_SECRET
from tests.helpers.waiting import eventually_sync
from tests.media.conftest import Clips
from tests.playback.conftest import Live, User


@dataclass
class Played:
    rep: User
    a: dict[str, Any]  # org-visible landscape clip, ready
    b: dict[str, Any]  # private small clip of the rep, ready


@pytest.fixture(scope="module")
def played(live: Live, media: Clips) -> Played:
    rep = live.add_user("rep")
    a = live.upload(rep, media.landscape())
    b = live.upload(rep, media.small(), visibility="private")
    return Played(rep=rep, a=live.wait_ready(rep, a), b=live.wait_ready(rep, b))


def playback(live: Live, actor: User, clip_id: str) -> dict[str, Any]:
    r = live.http.get(f"/v1/clips/{clip_id}/playback", headers=actor.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def probe(url: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, url],
        capture_output=True,
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def lines_with_uris(text: str) -> list[str]:
    uris = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            uris.append(line)
        uris += re.findall(r'URI="([^"]*)"', line)
    return uris


def media_version(live: Live, clip_id: str) -> str:
    async def run() -> str:
        engine = make_engine(live.settings.database_url)
        try:
            async with engine.connect() as conn:
                media = await conn.scalar(select(Clip.media).where(Clip.id == uuid.UUID(clip_id)))
        finally:
            await engine.dispose()
        assert media is not None
        return str(media["version"])

    return asyncio.run(run())


def assert_forbidden(r: httpx.Response, code: str = "invalid_signature") -> None:
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == code


def redirect_target(live: Live, url: str) -> str:
    """Where a segment URL redirects now (checked: a 302 the player may not cache for long)."""
    sent = time.time()
    r = live.http.get(url)
    assert r.status_code == 302, (url, r.status_code, r.text)
    assert re.fullmatch(r"private, max-age=\d+", r.headers["cache-control"]), r.headers
    max_age = int(r.headers["cache-control"].split("=")[1])
    target = r.headers["location"]
    # Never cached past its target's life (which began after `sent`).
    assert max_age <= target_expiry(target) - sent, (max_age, target)
    return target


def target_expiry(url: str) -> float:
    """When a redirect's target stops working: its signed `exp` (local `/v1/media/...`), or
    X-Amz-Date + X-Amz-Expires of a presigned GET (S3 refuses it after that; moto does not
    check, so the tests read it here)."""
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Date" in query:
        signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed.timestamp() + int(query["X-Amz-Expires"][0])
    return float(query["exp"][0])


def test_ffmpeg_plays_every_variant_and_the_mp4(live: Live, played: Played) -> None:
    urls = playback(live, played.rep, played.a["id"])
    expected_ms = played.a["duration_ms"]
    assert urls["hls_url"].startswith(live.base_url + "/v1/play/")
    assert urls["hls_url"].endswith("/master.m3u8")

    # Every variant, every stream: a copy-decode of the whole master playlist.
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", urls["hls_url"], "-map", "0", "-c", "copy",
         "-f", "null", "-"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    master = live.http.get(urls["hls_url"]).text
    variants = lines_with_uris(master)
    assert len(variants) == len(played.a["renditions"]) == 2
    heights = set()
    for url in variants:
        info = probe(url, "-show_entries", "format=duration:stream=codec_type,height")
        assert abs(float(info["format"]["duration"]) * 1000 - expected_ms) <= 100, info
        heights |= {s["height"] for s in info["streams"] if s["codec_type"] == "video"}
    assert heights == {r["height"] for r in played.a["renditions"]}

    mp4 = probe(urls["mp4_url"], "-show_entries", "format=duration:stream=codec_name")
    assert abs(float(mp4["format"]["duration"]) * 1000 - expected_ms) <= 100
    assert {s["codec_name"] for s in mp4["streams"]} == {"h264", "aac"}

    poster = live.http.get(urls["poster_url"], follow_redirects=True)
    assert poster.status_code == 200
    assert poster.headers["content-type"] == "image/jpeg"
    assert poster.content[:3] == b"\xff\xd8\xff"
    (stream,) = probe(urls["poster_url"], "-show_entries", "stream=width,height")["streams"]
    assert (stream["width"], stream["height"]) == (played.a["width"], played.a["height"])


def test_every_url_in_every_playlist_is_absolute_signed_and_fetchable(
    live: Live, played: Played
) -> None:
    urls = playback(live, played.rep, played.a["id"])
    signed_marker = "X-Amz-Signature=" if live.settings.storage == "s3" else "sig="
    r = live.http.get(urls["hls_url"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    assert re.fullmatch(r"private, max-age=\d+", r.headers["cache-control"])
    for variant in lines_with_uris(r.text):
        assert variant.startswith(live.base_url + "/v1/play/") and variant.endswith(".m3u8")
        v = live.http.get(variant)
        assert v.status_code == 200, v.text
        # Nothing inside expires before the token: cacheable for the token's remaining life.
        max_age = int(v.headers["cache-control"].split("=")[1])
        assert live.settings.playback_ttl_s - 60 < max_age <= live.settings.playback_ttl_s
        uris = lines_with_uris(v.text)
        assert any(u.endswith("/init.mp4") for u in uris)
        assert sum(u.endswith(".m4s") for u in uris) >= 1
        # Segments sit under s/ of the token: {root}s/v0/seg_00001.m4s.
        token_root, rendition = variant.rsplit("/", 2)[:2]
        rendition_root = f"{token_root}/s/{rendition}/"
        for uri in uris:
            # Under the same token, nothing signed in the playlist itself: each fetch of a
            # segment URL answers 302 to a URL minted then.
            assert uri.startswith(rendition_root) and "?" not in uri, uri
            target = redirect_target(live, uri)
            assert target.startswith("http://") and signed_marker in target, target
            got = httpx.get(target)
            assert got.status_code == 200, (uri, got.text)
            assert got.content

    vtt = live.http.get(urls["storyboard_url"])
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT")
    assert vtt.headers["content-type"].startswith("text/vtt")
    sprites = {line.split("#")[0] for line in vtt.text.splitlines() if "#xywh=" in line}
    assert len(sprites) == 1
    (sprite,) = sprites
    assert sprite.startswith("http://") and signed_marker in sprite
    got = httpx.get(sprite)
    assert got.status_code == 200 and got.content[:3] == b"\xff\xd8\xff"


def test_tampered_expired_and_cross_clip_tokens_are_403(live: Live, played: Played) -> None:
    urls = playback(live, played.rep, played.a["id"])
    token = urls["hls_url"].split("/v1/play/")[1].split("/")[0]
    # Bound to the clip and the viewer it was issued to.
    clip_hex, viewer_hex, exp, sig = token.split("-", 3)
    assert (clip_hex, viewer_hex) == (uuid.UUID(played.a["id"]).hex, uuid.UUID(played.rep.id).hex)
    for i in (0, len(sig) // 2, len(sig) - 1):
        flipped = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
        bad = f"{clip_hex}-{viewer_hex}-{exp}-{flipped}"
        assert_forbidden(live.http.get(f"/v1/play/{bad}/master.m3u8"))
        assert_forbidden(live.http.get(f"/v1/play/{bad}/v0/index.m3u8"))
    # The expiry is signed: moving it forward breaks the signature.
    later = f"{clip_hex}-{viewer_hex}-{int(exp) + 60}-{sig}"
    assert_forbidden(live.http.get(f"/v1/play/{later}/master.m3u8"))
    # So is the viewer: naming another user, or none, breaks it.
    other_hex = uuid.UUID(live.admin.id).hex
    assert_forbidden(live.http.get(f"/v1/play/{clip_hex}-{other_hex}-{exp}-{sig}/master.m3u8"))
    assert_forbidden(live.http.get(f"/v1/play/{clip_hex}-{exp}-{sig}/master.m3u8"))
    # Garbage.
    assert_forbidden(live.http.get("/v1/play/not-a-token/master.m3u8"))

    # A correctly signed token that has expired.
    version = media_version(live, played.a["id"])
    a_id, viewer = uuid.UUID(played.a["id"]), uuid.UUID(played.rep.id)
    old = signing.make_token(TEST_SECRET, a_id, version, int(time.time()) - 1, viewer)
    assert_forbidden(live.http.get(f"/v1/play/{old}/master.m3u8"), "expired_signature")
    fresh = signing.make_token(TEST_SECRET, a_id, version, int(time.time()) + 60, viewer)
    assert live.http.get(f"/v1/play/{fresh}/master.m3u8").status_code == 200
    # Signed for another media version (a republished clip): refused.
    stale = signing.make_token(TEST_SECRET, a_id, "0-0", int(time.time()) + 60, viewer)
    assert_forbidden(live.http.get(f"/v1/play/{stale}/master.m3u8"))

    # Clip A's token used on clip B's path.
    b_hex = uuid.UUID(played.b["id"]).hex
    assert_forbidden(live.http.get(f"/v1/play/{b_hex}-{viewer_hex}-{exp}-{sig}/master.m3u8"))

    # Segment URLs: the same token check.
    variant = lines_with_uris(live.http.get(urls["hls_url"]).text)[0]
    segment = lines_with_uris(live.http.get(variant).text)[-1]
    name = segment.split(f"/v1/play/{token}/")[1]
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    assert_forbidden(live.http.get(f"/v1/play/{clip_hex}-{viewer_hex}-{exp}-{flipped}/{name}"))
    assert_forbidden(live.http.get(f"/v1/play/{old}/{name}"), "expired_signature")
    assert_forbidden(live.http.get(f"/v1/play/{b_hex}-{viewer_hex}-{exp}-{sig}/{name}"))
    if live.settings.storage == "local":
        # The redirect target's own signature.
        head, _, sig_value = redirect_target(live, segment).rpartition("sig=")
        flipped = ("0" if sig_value[0] != "0" else "1") + sig_value[1:]
        assert_forbidden(httpx.get(head + "sig=" + flipped))


def test_range_requests_through_playback_urls(live: Live, played: Played) -> None:
    url = playback(live, played.rep, played.a["id"])["mp4_url"]
    whole = httpx.get(url, follow_redirects=True)
    assert whole.status_code == 200
    size = len(whole.content)
    assert int(whole.headers["content-length"]) == size > 1000

    def ranged(spec: str) -> httpx.Response:
        return httpx.get(url, headers={"Range": spec}, follow_redirects=True)

    first = ranged("bytes=0-0")
    assert first.status_code == 206 and first.content == whole.content[:1]
    assert first.headers["content-range"] == f"bytes 0-0/{size}"
    middle = ranged("bytes=100-199")
    assert middle.status_code == 206 and middle.content == whole.content[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{size}"
    suffix = ranged("bytes=-500")
    assert suffix.status_code == 206 and suffix.content == whole.content[-500:]
    assert suffix.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"
    beyond = ranged(f"bytes={size}-")
    assert beyond.status_code == 416
    if live.settings.storage == "local":
        assert beyond.json()["error"]["code"] == "range_not_satisfiable"
        assert beyond.headers["content-range"] == f"bytes */{size}"


def test_who_may_get_playback_urls(live: Live, played: Played) -> None:
    other_rep = live.add_user("rep")
    coach = live.add_user("coach")
    # Org-visible clip: any member; another org: 404.
    playback(live, other_rep, played.a["id"])
    outsider = live.new_org("Globex")
    r = live.http.get(f"/v1/clips/{played.a['id']}/playback", headers=outsider.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    # Someone else's private clip: 404 for a rep, fine for a coach.
    r = live.http.get(f"/v1/clips/{played.b['id']}/playback", headers=other_rep.headers)
    assert r.status_code == 404
    playback(live, coach, played.b["id"])
    assert live.http.get(f"/v1/clips/{played.a['id']}/playback").status_code == 401


def test_not_viewable_until_a_rendition_exists(live: Live, played: Played) -> None:
    from tests.helpers.api import clip_body

    r = live.http.post("/v1/clips", json=clip_body(), headers=played.rep.headers)
    clip_id = r.json()["clip"]["id"]
    r = live.http.get(f"/v1/clips/{clip_id}/playback", headers=played.rep.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_viewable"


def test_deleting_the_clip_stops_its_urls_at_once(live: Live, played: Played) -> None:
    urls = playback(live, played.rep, played.b["id"])
    master = live.http.get(urls["hls_url"])
    assert master.status_code == 200
    variant = lines_with_uris(master.text)[0]
    # A player holding the playlist (paused, say): its segment URLs work until the delete.
    segments = lines_with_uris(live.http.get(variant).text)
    assert len(segments) >= 2
    for url in segments:
        assert httpx.get(redirect_target(live, url)).status_code == 200
    r = live.http.delete(f"/v1/clips/{played.b['id']}", headers=played.rep.headers)
    assert r.status_code == 204
    # At once: no purge job to wait for, every request checks the clip.
    for url in (urls["hls_url"], variant, urls["storyboard_url"], urls["mp4_url"], *segments):
        gone = live.http.get(url)
        assert gone.status_code in (403, 404), (url, gone.status_code)
        assert "error" in gone.json()


def test_a_paused_player_resumes_after_the_redirect_targets_expired(
    live: Live, played: Played, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short target lifetime stands in for a long pause (the server reads its settings per
    # request); the token itself lives PEERPITCH_PLAYBACK_TTL_S (6 h).
    monkeypatch.setattr(live.settings, "playback_segment_url_ttl_s", 2)
    urls = playback(live, played.rep, played.a["id"])
    variant = lines_with_uris(live.http.get(urls["hls_url"]).text)[0]
    playlist = live.http.get(variant)  # what the player holds while it is paused
    assert playlist.status_code == 200
    max_age = int(playlist.headers["cache-control"].split("=")[1])
    assert max_age > 3600  # the playlist outlives any target: it signs nothing itself
    init, first, *_ = lines_with_uris(playlist.text)
    assert init.endswith("/init.mp4") and first.endswith(".m4s")

    before: dict[str, tuple[str, bytes]] = {}
    for url in (init, first):
        target = redirect_target(live, url)
        assert target_expiry(target) - time.time() <= 3  # 2 s, from the next whole second
        got = httpx.get(target)
        assert got.status_code == 200 and got.content
        before[url] = (target, got.content)

    # The pause. botocore presigns with the wall clock, so only time passing expires what
    # the player got before it: wait out the 2 s targets (a poll of the clock, no event).
    last = max(target_expiry(target) for target, _ in before.values())
    eventually_sync(
        lambda: time.time() > last + 0.5,
        timeout=10,
        interval=0.1,
        what="the first redirect targets to expire",
    )
    for url, (old_target, content) in before.items():
        if live.settings.storage == "local":
            assert_forbidden(httpx.get(old_target), "expired_signature")  # really dead
        else:
            assert target_expiry(old_target) < time.time()  # S3 would refuse it now
        # The same URL from the playlist fetched before the pause: a fresh target.
        target = redirect_target(live, url)
        assert target != old_target
        assert target_expiry(target) > time.time()
        got = httpx.get(target)
        assert got.status_code == 200 and got.content == content


def test_segment_urls_reach_only_the_files_of_published_renditions(
    live: Live, played: Played
) -> None:
    urls = playback(live, played.rep, played.a["id"])
    root = urls["hls_url"].removesuffix("master.m3u8")
    variant = lines_with_uris(live.http.get(urls["hls_url"]).text)[0]
    segment = lines_with_uris(live.http.get(variant).text)[-1]
    rendition, name = segment.removeprefix(root + "s/").split("/")
    # Playlists are served, never redirected to; an unpublished one is not there.
    assert live.http.get(f"{root}{rendition}/index.m3u8").status_code == 200
    assert live.http.get(f"{root}{rendition}/encoder.m3u8").status_code == 404
    for path in (
        f"v9/{name}",  # no such rendition
        f"storyboard/{name}",
        f"{rendition}/.{name}",  # not a name the transcoder writes
        f"{rendition}/nested/{name}",
    ):
        r = live.http.get(root + "s/" + path)
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "not_found"
    # A missing file of a published rendition: the target answers 404.
    missing = httpx.get(redirect_target(live, f"{root}s/{rendition}/seg_99999.m4s"))
    assert missing.status_code == 404
