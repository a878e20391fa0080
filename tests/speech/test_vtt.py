"""WebVTT rendering and its HLS segmentation (read back by ffmpeg's HLS demuxer)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.speech import (
    Segment,
    Transcript,
    hls_subtitles_playlist,
    hls_vtt_chunks,
    subtitles_media_tag,
    to_vtt,
)
from app.speech.vtt import chunk_name, timestamp


def transcript(*cues: tuple[int, int, str]) -> Transcript:
    return Transcript(
        engine="pocketsphinx",
        confidence_class="low",
        language="en",
        segments=tuple(Segment(start_ms=a, end_ms=b, text=t) for a, b, t in cues),
    )


CUES = transcript(
    (500, 2500, "Hello <b>there</b> & welcome"),
    (5000, 7000, "crossing the boundary"),
    (13000, 14500, "last one"),
)


def test_timestamps() -> None:
    assert timestamp(0) == "00:00:00.000"
    assert timestamp(3_723_004) == "01:02:03.004"
    assert timestamp(-5) == "00:00:00.000"


def test_to_vtt_escapes_and_folds_lines() -> None:
    t = transcript(
        (0, 1000, "a --> b & <c>"),
        (1000, 1000, "line one\n\nline two"),  # zero length: still ends after it starts
        (2000, 3000, "   "),  # nothing to show: no cue
    )
    assert to_vtt(t) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.000\na --&gt; b &amp; &lt;c&gt;\n\n"
        "00:00:01.000 --> 00:00:01.001\nline one line two\n\n"
    )
    assert to_vtt(transcript()) == "WEBVTT\n\n"


def test_hls_chunks_follow_the_segment_grid() -> None:
    chunks = hls_vtt_chunks(CUES, duration_ms=14_800, segment_ms=6000, mpegts=900_000)
    assert [(c.index, c.start_ms, c.duration_ms) for c in chunks] == [
        (0, 0, 6000),
        (1, 6000, 6000),
        (2, 12000, 2800),
    ]
    for c in chunks:
        assert c.text.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n")
    # The cue crossing 6 s is in both chunks, with its own (absolute) times.
    assert "00:00:05.000 --> 00:00:07.000\ncrossing the boundary" in chunks[0].text
    assert "00:00:05.000 --> 00:00:07.000\ncrossing the boundary" in chunks[1].text
    assert "Hello" in chunks[0].text and "Hello" not in chunks[1].text
    assert "last one" in chunks[2].text and "last one" not in chunks[1].text


def test_chunks_without_speech_cover_the_timeline() -> None:
    chunks = hls_vtt_chunks(None, duration_ms=7000, segment_ms=6000)
    assert [c.duration_ms for c in chunks] == [6000, 1000]
    assert all(c.text == "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n" for c in chunks)
    with pytest.raises(ValueError, match="segment_ms"):
        hls_vtt_chunks(None, duration_ms=7000, segment_ms=0)


def test_playlist_and_master_tag() -> None:
    chunks = hls_vtt_chunks(CUES, duration_ms=14_800, segment_ms=6000)
    playlist = hls_subtitles_playlist(chunks, uri=lambda c: f"https://cdn/s/{c.index}.vtt?sig=x")
    assert playlist.splitlines() == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:6",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXTINF:6.000,",
        "https://cdn/s/0.vtt?sig=x",
        "#EXTINF:6.000,",
        "https://cdn/s/1.vtt?sig=x",
        "#EXTINF:2.800,",
        "https://cdn/s/2.vtt?sig=x",
        "#EXT-X-ENDLIST",
    ]
    assert subtitles_media_tag("subs/index.m3u8", language="en", name="English") == (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="English",LANGUAGE="en",'
        'DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="subs/index.m3u8"'
    )


@pytest.mark.ffmpeg
def test_ffmpeg_reads_the_subtitles_playlist(tmp_path: Path) -> None:
    chunks = hls_vtt_chunks(CUES, duration_ms=14_800, segment_ms=6000)
    for c in chunks:
        (tmp_path / chunk_name(c)).write_text(c.text)
    (tmp_path / "subs.m3u8").write_text(hls_subtitles_playlist(chunks))
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name",
         "-of", "csv=p=0", str(tmp_path / "subs.m3u8")],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert set(probe.split()) == {"webvtt,subtitle"}  # listed under its program too
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(tmp_path / "subs.m3u8"), "-f", "webvtt", "-"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert out.split("\n\n")[1:] == [
        "00:00.500 --> 00:02.500\nHello <b>there</b> & welcome",
        "00:05.000 --> 00:07.000\ncrossing the boundary",
        "00:13.000 --> 00:14.500\nlast one\n",
    ]
