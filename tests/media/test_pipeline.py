"""transcode() end to end on tiny generated clips; outputs are checked with ffprobe."""

from __future__ import annotations

import itertools
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.media import MediaRejected, TranscodeResult, transcode
from app.media.pipeline import PartialOutput, concat_rendition
from tests.media.conftest import Clips, ffprobe, video_packets

pytestmark = pytest.mark.ffmpeg


@dataclass
class Seen:
    """One partial output, as the publisher would see it when it is handed over."""

    partial: PartialOutput
    master: str
    playlists: dict[str, str]  # rendition playlist -> text
    missing: list[str]  # listed files not on disk


@dataclass
class Recorder:
    out: Path
    progress: list[float] = field(default_factory=list)
    partials: list[Seen] = field(default_factory=list)

    async def on_progress(self, f: float) -> None:
        self.progress.append(f)

    async def on_partial(self, partial: PartialOutput) -> None:
        self.partials.append(
            Seen(
                partial,
                (self.out / "master.m3u8").read_text(),
                {r.playlist: (self.out / r.playlist).read_text() for r in partial.renditions},
                [f.path for f in partial.files if not (self.out / f.path).is_file()],
            )
        )


async def run(source: Path, tmp_path: Path, **kw: Any) -> tuple[TranscodeResult, Recorder]:
    out = tmp_path / "out"
    rec = Recorder(out)
    kw.setdefault("max_duration_s", 1800)
    kw.setdefault("max_dimension", 4096)
    kw.setdefault("preset", "ultrafast")
    kw.setdefault("watch_interval_s", 0.2)
    result = await transcode(
        source, out, on_progress=rec.on_progress, on_partial=rec.on_partial, **kw
    )
    return result, rec


def master_entries(text: str) -> list[tuple[dict[str, str], str]]:
    entries = []
    for attrs, uri in re.findall(r"#EXT-X-STREAM-INF:(.*)\n(.*)", text):
        parsed = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', attrs))
        entries.append(({k: v.strip('"') for k, v in parsed.items()}, uri))
    return entries


def stream(data: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(s for s in data["streams"] if s["codec_type"] == kind)


def decode_all(path: Path) -> None:
    """Fails unless ffmpeg can demux and decode every stream (HLS via the master)."""
    cmd = ["ffmpeg", "-v", "error", "-protocol_whitelist", "file", "-i", str(path)]
    subprocess.run(
        [*cmd, "-map", "0", "-f", "null", "-"],
        check=True,
        capture_output=True,
    )


def rendition_file(out: Path, result: TranscodeResult, name: str, tmp_path: Path) -> Path:
    r = next(r.rendition for r in result.renditions if r.rendition.name == name)
    dest = tmp_path / f"{name}.mp4"
    concat_rendition(out, r, dest)
    return dest


async def test_landscape_720p_with_audio(clips: Clips, tmp_path: Path) -> None:
    # Production presets here (the other tests use ultrafast): CODECS must say High.
    result, rec = await run(clips.landscape(), tmp_path, preset=None)
    out = rec.out

    assert [(r.width, r.height, r.bitrate) for r in result.renditions] == [
        (640, 360, 800_000),
        (1280, 720, 2_500_000),
    ]
    assert result.probe.metadata()["width"] == 1280
    assert result.probe.has_audio

    # Master: every variant with BANDWIDTH, RESOLUTION and CODECS that match the streams.
    entries = master_entries((out / "master.m3u8").read_text())
    assert [uri for _, uri in entries] == ["v1/index.m3u8", "v0/index.m3u8"]
    by_uri = {uri: attrs for attrs, uri in entries}
    assert by_uri["v1/index.m3u8"]["RESOLUTION"] == "1280x720"
    assert by_uri["v0/index.m3u8"]["RESOLUTION"] == "640x360"
    assert by_uri["v1/index.m3u8"]["CODECS"] == "avc1.64001f,mp4a.40.2"
    assert by_uri["v0/index.m3u8"]["CODECS"] == "avc1.64001e,mp4a.40.2"
    for out_r in result.renditions:
        attrs = by_uri[out_r.playlist]
        assert int(attrs["BANDWIDTH"]) == out_r.bandwidth >= out_r.rendition.nominal_bandwidth
        assert int(attrs["AVERAGE-BANDWIDTH"]) == out_r.average_bandwidth
        assert attrs["CODECS"] == out_r.codecs
        assert out_r.duration_ms == 3000
        playlist = (out / out_r.playlist).read_text()
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist
        assert "#EXT-X-ENDLIST" in playlist
        assert '#EXT-X-MAP:URI="init.mp4"' in playlist
        assert "seg_00001.m4s" in playlist
        # The CODECS string is what the encoder really wrote.
        data = ffprobe(rendition_file(out, result, out_r.rendition.name, tmp_path), "-show_streams")
        v = stream(data, "video")
        assert (v["profile"], v["level"]) == ("High", round(float(out_r.rendition.level) * 10))
        assert (v["width"], v["height"]) == (out_r.width, out_r.height)
        a = stream(data, "audio")
        assert (a["codec_name"], a["sample_rate"], a["channels"]) == ("aac", "48000", 2)
    decode_all(out / "master.m3u8")

    # Keyframes every 2 s, at the same instants in every rendition (segments line up).
    keyframes = [
        [t for t, key in video_packets(rendition_file(out, result, n, tmp_path)) if key]
        for n in ("v0", "v1")
    ]
    assert keyframes[0] == keyframes[1]
    # (B-frames delay every pts by the same two frames.)
    assert [round(t - keyframes[0][0], 3) for t in keyframes[0]] == [0.0, 2.0]

    # Every rendition carries the same audio: same packets at the same instants (the
    # encoder's priming ahead of the video).
    audio = [
        ffprobe(
            rendition_file(out, result, n, tmp_path),
            "-select_streams", "a:0", "-show_entries", "packet=pts_time,size",
        )["packets"]
        for n in ("v0", "v1")
    ]  # fmt: skip
    assert audio[0] == audio[1]
    assert float(audio[1][0]["pts_time"]) == pytest.approx(keyframes[1][0] - 1024 / 48000, abs=1e-3)

    # MP4 download: the 720p rendition, index in front, no source metadata.
    mp4 = out / "download.mp4"
    head = mp4.read_bytes()[:65536]
    assert head.index(b"moov") < head.index(b"mdat") if b"mdat" in head else b"moov" in head
    data = ffprobe(mp4, "-show_streams", "-show_format")
    assert (stream(data, "video")["width"], stream(data, "video")["height"]) == (1280, 720)
    assert stream(data, "audio")["codec_name"] == "aac"
    assert float(data["format"]["duration"]) == pytest.approx(3.0, abs=0.1)
    tags = str(data["format"].get("tags", {})) + str(stream(data, "video").get("tags", {}))
    assert "secret-title" not in tags
    assert "48.8584" not in tags

    # Poster and storyboard.
    poster = stream(ffprobe(out / "poster.jpg", "-show_streams"), "video")
    assert (poster["codec_name"], poster["width"], poster["height"]) == ("mjpeg", 1280, 720)
    sb = result.plan.storyboard
    assert (sb.interval_s, sb.count, sb.tile_width, sb.tile_height) == (2, 2, 160, 90)
    sprite = stream(ffprobe(out / "storyboard.jpg", "-show_streams"), "video")
    assert (sprite["width"], sprite["height"]) == (sb.width, sb.height)
    vtt = (out / "storyboard.vtt").read_text()
    assert vtt.startswith("WEBVTT")
    assert "00:00:02.000 --> 00:00:03.000\nstoryboard.jpg#xywh=160,0,160,90" in vtt

    # Listed files: exactly what is on disk but ffmpeg's own playlists, with content types,
    # the master last.
    listed = {f.path for f in result.files}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {p for p in on_disk if p.endswith("encoder.m3u8")} == {
        "v0/encoder.m3u8",
        "v1/encoder.m3u8",
    }
    on_disk = {p for p in on_disk if not p.endswith("encoder.m3u8")}
    assert listed == on_disk
    assert result.files[-1].path == "master.m3u8"
    types = {f.path: f.content_type for f in result.files}
    assert types["master.m3u8"] == "application/vnd.apple.mpegurl"
    assert types["v0/seg_00001.m4s"] == "video/iso.segment"
    assert types["v0/init.mp4"] == types["download.mp4"] == "video/mp4"
    assert types["poster.jpg"] == "image/jpeg"
    assert types["storyboard.vtt"] == "text/vtt"
    for f in result.files:
        assert f.size == (out / f.path).stat().st_size > 0
        # A playlist comes after every segment it references.
        if f.path.endswith("index.m3u8"):
            position = [g.path for g in result.files].index(f.path)
            before = {g.path for g in result.files[:position]}
            prefix = f.path.split("/")[0]
            assert {p for p in on_disk if p.startswith(prefix + "/seg_")} <= before

    assert rec.progress == sorted(rec.progress)
    assert rec.progress[-1] == 1.0
    assert len(rec.progress) >= 2


async def test_portrait_phone_clip_stays_portrait(clips: Clips, tmp_path: Path) -> None:
    result, rec = await run(clips.portrait_rotated(), tmp_path)
    assert result.probe.video is not None
    assert result.probe.video.rotation in (90, 270)
    assert (result.probe.video.width, result.probe.video.height) == (1280, 720)
    assert [(r.width, r.height) for r in result.renditions] == [(360, 640), (720, 1280)]
    data = ffprobe(rec.out / "download.mp4", "-show_streams")
    v = stream(data, "video")
    assert (v["width"], v["height"]) == (720, 1280)
    assert not v.get("side_data_list")  # pixels are upright: no rotation left to apply
    poster = stream(ffprobe(rec.out / "poster.jpg", "-show_streams"), "video")
    assert (poster["width"], poster["height"]) == (720, 1280)
    assert result.plan.storyboard.tile_height == 284
    assert "RESOLUTION=720x1280" in (rec.out / "master.m3u8").read_text()


async def test_no_audio_still_plays_with_a_silent_track(clips: Clips, tmp_path: Path) -> None:
    result, rec = await run(clips.no_audio(), tmp_path)
    assert not result.probe.has_audio
    assert [(r.width, r.height) for r in result.renditions] == [(640, 360)]
    decode_all(rec.out / "master.m3u8")
    data = ffprobe(rendition_file(rec.out, result, "v0", tmp_path), "-show_streams", "-show_format")
    assert stream(data, "audio")["codec_name"] == "aac"
    assert float(data["format"]["duration"]) == pytest.approx(3.0, abs=0.1)
    # ultrafast turns CABAC off: x264 signals Constrained Baseline, and so must the master.
    v = stream(data, "video")
    assert (v["profile"], v["level"]) == ("Constrained Baseline", 30)
    assert 'CODECS="avc1.42c01e,mp4a.40.2"' in (rec.out / "master.m3u8").read_text()


async def test_vfr_input_becomes_constant_frame_rate(clips: Clips, tmp_path: Path) -> None:
    result, rec = await run(clips.vfr(), tmp_path)
    assert result.probe.video is not None
    assert result.probe.video.is_vfr
    mp4 = rec.out / "download.mp4"
    v = stream(ffprobe(mp4, "-show_streams"), "video")
    assert v["r_frame_rate"] == v["avg_frame_rate"] == "30/1"
    times = [t for t, _ in video_packets(mp4)]
    times.sort()
    deltas = {round(b - a, 4) for a, b in itertools.pairwise(times)}
    assert deltas == {round(1 / 30, 4)}
    assert len(times) == pytest.approx(90, abs=2)


async def test_output_folder_must_be_empty(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.m4s").write_bytes(b"x")
    with pytest.raises(ValueError, match="not empty"):
        await transcode(clips.small(), out, max_duration_s=60, max_dimension=4096)


async def test_clip_plays_while_it_is_encoded(clips: Clips, tmp_path: Path) -> None:
    # 14 s read at 4x real time: segments end at 6 s and 12 s of video, ~1.5 s apart.
    result, rec = await run(clips.small(14), tmp_path, readrate=4)
    assert rec.partials, "nothing was handed over before the end"
    first = rec.partials[0]
    assert first.partial.segments >= 1
    paths = [f.path for f in first.partial.files]
    assert paths[:2] == ["v0/init.mp4", "v0/seg_00001.m4s"]
    assert paths[-1] == "master.m3u8"
    assert paths.index("v0/index.m3u8") > paths.index("v0/seg_00001.m4s")
    assert first.missing == []
    assert [uri for _, uri in master_entries(first.master)] == ["v0/index.m3u8"]
    growing = first.playlists["v0/index.m3u8"]
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing and "#EXT-X-ENDLIST" not in growing
    assert "#EXT-X-START:TIME-OFFSET=0" in growing
    assert growing.count("#EXTINF:") == first.partial.segments
    # The poster (at 10% = 1.4 s) exists long before the first segment ends.
    assert "poster.jpg" in paths

    # Each later partial carries only new segments (and the rewritten playlists).
    handed = [f.path for seen in rec.partials for f in seen.partial.files]
    segments = [p for p in handed if p.endswith(".m4s")]
    assert len(segments) == len(set(segments)) == rec.partials[-1].partial.segments
    assert handed.count("v0/init.mp4") == handed.count("poster.jpg") == 1

    final = (rec.out / "v0/index.m3u8").read_text()
    assert final.startswith(first.playlists["v0/index.m3u8"])  # only appended to
    assert final.endswith("#EXT-X-ENDLIST\n")
    assert final.count("#EXTINF:") == 3
    assert result.renditions[0].duration_ms == 14_000
    decode_all(rec.out / "master.m3u8")


async def test_a_failing_on_partial_aborts_the_transcode(clips: Clips, tmp_path: Path) -> None:
    async def on_partial(partial: PartialOutput) -> None:
        raise ConnectionError("storage unreachable")

    with pytest.raises(ConnectionError, match="storage unreachable"):
        await transcode(
            clips.small(14),
            tmp_path / "out",
            max_duration_s=60,
            max_dimension=4096,
            on_partial=on_partial,
            preset="ultrafast",
            readrate=4,
            watch_interval_s=0.2,
        )
    # ffmpeg was stopped after the first segment: the clip was not encoded to the end.
    listed = (tmp_path / "out" / "v0" / "encoder.m3u8").read_text()
    assert "#EXT-X-ENDLIST" not in listed
    assert not (tmp_path / "out" / "download.mp4").exists()


async def test_truncated_file_with_index_in_front_is_rejected_after_decoding(
    clips: Clips, tmp_path: Path
) -> None:
    with pytest.raises(MediaRejected) as e:
        await run(clips.truncated_faststart(), tmp_path)
    assert e.value.code == "invalid_media"
    assert "truncated" in e.value.message
    # Rejected before anything that only a whole clip gets (a partial output may have been
    # handed over while it decoded: the worker deletes it).
    assert not (tmp_path / "out" / "download.mp4").exists()
    assert not (tmp_path / "out" / "storyboard.vtt").exists()


async def test_webm_without_a_duration_is_measured(clips: Clips, tmp_path: Path) -> None:
    source = clips.webm_without_duration()
    assert "duration" not in ffprobe(source, "-show_format")["format"]
    result, rec = await run(source, tmp_path)
    assert result.probe.duration_ms == 3000
    assert result.probe.container == "matroska"
    assert (result.probe.metadata()["video_codec"], result.probe.metadata()["audio_codec"]) == (
        "vp8",
        "opus",
    )
    assert result.renditions[0].duration_ms == 3000
    decode_all(rec.out / "master.m3u8")
