"""parse_probe() and validate() on ffprobe-shaped JSON: pure, no ffmpeg."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest

from app.media.errors import MediaRejected
from app.media.probe import parse_probe, validate

MOV = "mov,mp4,m4a,3gp,3g2,mj2"


def video(**overrides: Any) -> dict[str, Any]:
    stream = {
        "index": 0,
        "codec_name": "h264",
        "codec_type": "video",
        "width": 1920,
        "height": 1080,
        "sample_aspect_ratio": "1:1",
        "pix_fmt": "yuv420p",
        "r_frame_rate": "30/1",
        "avg_frame_rate": "30/1",
        "duration": "12.000000",
        "bit_rate": "8000000",
        "disposition": {"default": 1, "attached_pic": 0},
    }
    stream.update(overrides)
    return stream


def audio(**overrides: Any) -> dict[str, Any]:
    stream = {
        "index": 1,
        "codec_name": "aac",
        "codec_type": "audio",
        "sample_rate": "48000",
        "channels": 2,
        "bit_rate": "128000",
        "disposition": {"default": 1},
    }
    stream.update(overrides)
    return stream


def ffprobe_json(
    *streams: dict[str, Any], fmt: str = MOV, duration: str | None = "12.0"
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "streams": list(streams),
        "format": {"format_name": fmt, "size": "1000000", "bit_rate": "8128000"},
    }
    if duration is not None:
        data["format"]["duration"] = duration
    return data


def test_parses_a_normal_clip() -> None:
    p = parse_probe(ffprobe_json(video(), audio()))
    assert p.container == "mp4"
    assert p.duration_ms == 12_000
    assert p.video is not None
    assert (p.video.display_width, p.video.display_height) == (1920, 1080)
    assert p.video.fps == Fraction(30)
    assert not p.video.is_vfr
    assert p.has_audio
    assert p.audio is not None
    assert p.audio.codec == "aac"
    assert p.metadata() == {
        "container": "mp4",
        "duration_ms": 12_000,
        "width": 1920,
        "height": 1080,
        "rotation": 0,
        "fps": 30.0,
        "is_vfr": False,
        "video_codec": "h264",
        "has_audio": True,
        "audio_codec": "aac",
        "bit_rate": 8_128_000,
        "size_bytes": 1_000_000,
    }


def test_display_matrix_rotation_swaps_displayed_size() -> None:
    side = [{"side_data_type": "Display Matrix", "displaymatrix": "...", "rotation": -90}]
    p = parse_probe(ffprobe_json(video(side_data_list=side)))
    assert p.video is not None
    assert p.video.rotation == 90
    assert (p.video.display_width, p.video.display_height) == (1080, 1920)


def test_legacy_rotate_tag() -> None:
    p = parse_probe(ffprobe_json(video(tags={"rotate": "270"})))
    assert p.video is not None
    assert p.video.rotation == 270
    assert (p.video.display_width, p.video.display_height) == (1080, 1920)
    upside_down = parse_probe(ffprobe_json(video(tags={"rotate": "180"})))
    assert upside_down.video is not None
    assert (upside_down.video.display_width, upside_down.video.display_height) == (1920, 1080)


def test_anamorphic_sample_aspect_ratio() -> None:
    p = parse_probe(ffprobe_json(video(width=720, height=480, sample_aspect_ratio="32:27")))
    assert p.video is not None
    assert (p.video.display_width, p.video.display_height) == (853, 480)


def test_vfr_detection() -> None:
    p = parse_probe(ffprobe_json(video(avg_frame_rate="2340/89", r_frame_rate="60/1")))
    assert p.video is not None
    assert p.video.is_vfr
    assert p.video.fps == Fraction(2340, 89)


def test_bad_rates_are_ignored() -> None:
    p = parse_probe(ffprobe_json(video(avg_frame_rate="0/0", r_frame_rate="1000/1")))
    assert p.video is not None
    assert p.video.fps is None  # a timebase, not a frame rate: the plan uses 30
    q = parse_probe(ffprobe_json(video(avg_frame_rate="25/1", r_frame_rate="90000/1")))
    assert q.video is not None
    assert q.video.fps == Fraction(25)
    assert q.video.is_vfr


def test_attached_pictures_are_not_video() -> None:
    cover = video(index=1, codec_name="mjpeg", disposition={"attached_pic": 1})
    p = parse_probe(ffprobe_json(audio(index=0), cover, fmt=MOV))
    assert p.video is None
    with pytest.raises(MediaRejected) as e:
        validate(p, max_duration_s=1800, max_dimension=4096)
    assert e.value.code == "no_video_stream"


def test_first_real_video_stream_is_used() -> None:
    p = parse_probe(ffprobe_json(video(index=0, width=640, height=360), video(index=2)))
    assert p.video is not None
    assert (p.video.index, p.video.width) == (0, 640)
    assert p.video_streams == 2


def test_default_audio_is_preferred() -> None:
    p = parse_probe(
        ffprobe_json(video(), audio(index=1, disposition={"default": 0}), audio(index=2))
    )
    assert p.audio is not None
    assert p.audio.index == 2


def test_missing_format_duration_falls_back_to_stream() -> None:
    p = parse_probe(ffprobe_json(video(duration="7.5"), duration=None))
    assert p.duration_ms == 7_500


def _reject(data: dict[str, Any], **limits: int) -> str:
    with pytest.raises(MediaRejected) as e:
        validate(
            parse_probe(data),
            max_duration_s=limits.get("max_duration_s", 1800),
            max_dimension=limits.get("max_dimension", 4096),
        )
    assert e.value.message
    return e.value.code


def test_validate_accepts_a_normal_clip() -> None:
    validate(parse_probe(ffprobe_json(video(), audio())), max_duration_s=1800, max_dimension=4096)


@pytest.mark.parametrize(
    ("data", "limits", "code"),
    [
        ({}, {}, "invalid_media"),
        (ffprobe_json(audio(index=0), fmt="wav"), {}, "no_video_stream"),
        (ffprobe_json(video(), fmt="ogg"), {}, "invalid_media"),
        (ffprobe_json(video(codec_name="theora")), {}, "unsupported_codec"),
        (ffprobe_json(video(codec_name="ffv1"), fmt="matroska,webm"), {}, "unsupported_codec"),
        (ffprobe_json(video(), audio(codec_name="dts")), {}, "unsupported_codec"),
        (ffprobe_json(video(width=0, height=0)), {}, "invalid_media"),
        (ffprobe_json(video(duration=None), duration=None), {}, "invalid_media"),
        (ffprobe_json(video()), {"max_duration_s": 10}, "too_long"),
        (ffprobe_json(video()), {"max_dimension": 1280}, "too_large"),
        (ffprobe_json(video(width=1080, height=4100)), {}, "too_large"),
    ],
)
def test_validate_rejections(data: dict[str, Any], limits: dict[str, int], code: str) -> None:
    assert _reject(data, **limits) == code


def test_duration_exactly_at_the_limit_is_accepted() -> None:
    p = parse_probe(ffprobe_json(video(), duration="10.0"))
    validate(p, max_duration_s=10, max_dimension=4096)
    with pytest.raises(MediaRejected, match="too_long"):
        validate(replace(p, duration_ms=10_001), max_duration_s=10, max_dimension=4096)


def test_messages_do_not_echo_file_controlled_text() -> None:
    data = ffprobe_json(video(codec_name="h264", tags={"title": "<script>"}), duration="99999")
    with pytest.raises(MediaRejected) as e:
        validate(parse_probe(data), max_duration_s=60, max_dimension=4096)
    assert e.value.code == "too_long"
    assert "<script>" not in e.value.message
    assert e.value.message == "The video is 27:46:39 long; the limit is 1:00."
