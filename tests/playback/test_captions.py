"""Captions in playback: once a pitch's speech analysis has a transcript, its HLS master
carries a SUBTITLES rendition (segmented WebVTT) that ffprobe and ffmpeg read through the
signed URLs, on local storage and on S3, and `captions_url` serves the whole track; a clip
without speech has neither."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import httpx
import pytest

from tests.helpers.waiting import eventually_sync
from tests.media.conftest import Clips
from tests.playback.conftest import Live, User
from tests.playback.test_hls import lines_with_uris, playback, probe
from tests.speech.conftest import Audio


def analysed(live: Live, actor: User, clip_id: str) -> dict[str, Any]:
    speech: dict[str, Any] = eventually_sync(
        lambda: live.http.get(f"/v1/clips/{clip_id}/speech", headers=actor.headers).json(),
        until=lambda s: s["status"] != "pending",
        timeout=120,
        interval=0.2,
        what=f"clip {clip_id} to be analysed",
    )
    return speech


def root_of(urls: dict[str, Any]) -> str:
    return str(urls["hls_url"]).rsplit("/", 1)[0] + "/"


def follow(live: Live, url: str) -> httpx.Response:
    r = live.http.get(url)
    assert r.status_code == 302, (url, r.status_code, r.text)
    target = httpx.get(r.headers["location"], timeout=30)
    assert target.status_code == 200, target.text
    return target


@pytest.fixture(scope="module")
def spoken_pitch(live: Live, tmp_path_factory: pytest.TempPathFactory) -> tuple[User, str]:
    audio = Audio(tmp_path_factory.mktemp("captions-speech"))
    spoken = audio.spoken("pitch", [700, "s0", 1800, "s1", 500])
    rep = live.add_user("rep")
    clip_id = live.upload(rep, audio.as_video(spoken.path, "pitch.mp4"))
    live.wait_ready(rep, clip_id)
    speech = analysed(live, rep, clip_id)
    assert (speech["status"], speech["has_transcript"]) == ("ready", True), speech
    return rep, clip_id


def test_the_master_names_a_subtitles_rendition_that_ffprobe_reads(
    live: Live, spoken_pitch: tuple[User, str]
) -> None:
    rep, clip_id = spoken_pitch
    urls = playback(live, rep, clip_id)
    master = live.http.get(urls["hls_url"]).text
    media_tags = [line for line in master.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    assert len(media_tags) == 1, master
    tag = media_tags[0]
    assert 'TYPE=SUBTITLES,GROUP-ID="subs"' in tag and 'LANGUAGE="en"' in tag
    assert 'NAME="English (automatic, low confidence)"' in tag
    stream_infs = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert stream_infs and all(line.endswith(',SUBTITLES="subs"') for line in stream_infs)
    # Every URL in it is under the token, the subtitles playlist included.
    assert all(u.startswith(root_of(urls)) for u in lines_with_uris(master))

    subs_url = re.search(r'URI="([^"]+)"', tag)
    assert subs_url is not None and subs_url.group(1) == root_of(urls) + "captions/subs.m3u8"
    # ffprobe reads the master: it finds the rendition and its URI. FFmpeg's HLS demuxer
    # before 7 does not open subtitle renditions of a master (Debian 12 ships 5.1: it says
    # "Can't support the subtitle(uri: ...)" and lists video and audio); a newer one lists
    # the webvtt stream with them.
    run = subprocess.run(
        ["ffprobe", "-v", "warning", "-of", "json", "-show_streams", urls["hls_url"]],
        capture_output=True,
        check=True,
        timeout=60,
        text=True,
    )
    streams = json.loads(run.stdout)["streams"]
    types = [s["codec_type"] for s in streams]
    assert {"video", "audio"} <= set(types)
    if "subtitle" not in types:
        assert f"Can't support the subtitle(uri: {subs_url.group(1)})" in run.stderr, run.stderr
    # The rendition itself, probed through its signed URL: one WebVTT stream over the clip.
    (subtitles,) = probe(subs_url.group(1), "-show_streams")["streams"]
    assert (subtitles["codec_type"], subtitles["codec_name"]) == ("subtitle", "webvtt")
    clip = live.http.get(f"/v1/clips/{clip_id}", headers=rep.headers).json()
    assert abs(float(subtitles["duration"]) * 1000 - clip["duration_ms"]) < 500

    # ffmpeg reads the cues through the signed segment URLs: the transcript's text, timed.
    transcript = live.http.get(f"/v1/clips/{clip_id}/transcript", headers=rep.headers).json()
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", subs_url.group(1), "-f", "webvtt", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    cues = re.findall(r"(\d\d:\d\d[:.\d]*) --> ", out)
    assert len(cues) >= len(transcript["segments"]), out
    for segment in transcript["segments"]:
        assert segment["text"] in out


def test_the_subtitles_playlist_and_the_whole_track_are_signed_and_fetchable(
    live: Live, spoken_pitch: tuple[User, str]
) -> None:
    rep, clip_id = spoken_pitch
    urls = playback(live, rep, clip_id)
    root = root_of(urls)
    playlist = live.http.get(root + "captions/subs.m3u8")
    assert playlist.status_code == 200
    assert playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    chunk_urls = [u for u in playlist.text.splitlines() if u and not u.startswith("#")]
    clip = live.http.get(f"/v1/clips/{clip_id}", headers=rep.headers).json()
    # One chunk per 6 s video segment, covering the clip.
    assert len(chunk_urls) == -(-clip["duration_ms"] // 6000)
    assert all(u.startswith(root + "s/captions/") for u in chunk_urls)
    for url in chunk_urls:
        chunk = follow(live, url)
        assert chunk.headers["content-type"].startswith("text/vtt")
        assert chunk.text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n")

    whole = follow(live, urls["captions_url"])
    assert whole.headers["content-type"].startswith("text/vtt")
    vtt = live.http.get(f"/v1/clips/{clip_id}/transcript.vtt", headers=rep.headers)
    assert whole.text == vtt.text

    # Tampered: no file outside the published captions and renditions is reachable.
    for path in ("captions/other.m3u8", "s/captions/subs.m3u8", "s/nowhere/00000.vtt"):
        assert live.http.get(root + path).status_code in (403, 404), path


def test_a_clip_without_speech_has_no_captions(live: Live, tmp_path_factory: Any) -> None:
    media = Clips(tmp_path_factory.mktemp("captions-tone"))
    rep = live.add_user("rep")
    clip_id = live.upload(rep, media.small())
    live.wait_ready(rep, clip_id)
    speech = analysed(live, rep, clip_id)
    assert speech["status"] == "unavailable", speech
    urls = playback(live, rep, clip_id)
    assert urls["captions_url"] is None
    master = live.http.get(urls["hls_url"]).text
    assert "SUBTITLES" not in master
    root = root_of(urls)
    assert live.http.get(root + "captions/subs.m3u8").status_code == 404
    assert live.http.get(root + "captions.vtt").status_code == 404
