"""Pure planning: ladder, rates, argument lists, playlists, WebVTT. No ffmpeg runs here."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest

from app.media.plan import (
    DEFAULT_PRESETS,
    SEGMENT_S,
    START_LATENCY_S,
    MediaSegment,
    Rendition,
    Storyboard,
    VariantStats,
    avc1_codecs,
    encode_args,
    h264_level,
    ladder,
    output_fps,
    parse_media_playlist,
    plan_storyboard,
    plan_transcode,
    remux_download_args,
    render_master,
    render_media_playlist,
    stall_free_start,
    storyboard_vtt,
    variant_stats,
)
from app.media.probe import AudioStream, ProbeResult, VideoStream
from app.media.runner import check_safe_inputs

F30 = Fraction(30)


def _sizes(renditions: tuple[Rendition, ...]) -> list[tuple[int, int, int]]:
    return [(r.width, r.height, r.video_bitrate) for r in renditions]


def probe_result(
    width: int = 1920,
    height: int = 1080,
    *,
    rotation: int = 0,
    avg: Fraction | None = F30,
    real: Fraction | None = F30,
    audio: bool = True,
    duration_ms: int = 60_000,
) -> ProbeResult:
    dw, dh = (height, width) if rotation in (90, 270) else (width, height)
    return ProbeResult(
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        duration_ms=duration_ms,
        size_bytes=1000,
        bit_rate=8_000_000,
        video=VideoStream(
            index=0,
            codec="h264",
            width=width,
            height=height,
            rotation=rotation,
            display_width=dw,
            display_height=dh,
            avg_frame_rate=avg,
            r_frame_rate=real,
            bit_rate=None,
            duration_ms=duration_ms,
        ),
        audio=AudioStream(1, "aac", 2, 48000, 128000) if audio else None,
        video_streams=1,
    )


# --- ladder -------------------------------------------------------------------------------


def test_1080p_gets_the_full_ladder() -> None:
    rs = ladder(1920, 1080, F30)
    assert _sizes(rs) == [(640, 360, 800_000), (1280, 720, 2_500_000), (1920, 1080, 4_500_000)]
    assert [r.name for r in rs] == ["v0", "v1", "v2"]
    assert [r.level for r in rs] == ["3.0", "3.1", "4.0"]
    assert [r.codecs for r in rs] == [
        "avc1.64001e,mp4a.40.2",
        "avc1.64001f,mp4a.40.2",
        "avc1.640028,mp4a.40.2",
    ]
    assert [r.preset for r in rs] == ["veryfast", "veryfast", "superfast"]


def test_720p_is_never_upscaled() -> None:
    assert _sizes(ladder(1280, 720, F30)) == [(640, 360, 800_000), (1280, 720, 2_500_000)]


def test_larger_than_1080p_tops_out_at_1080p() -> None:
    assert _sizes(ladder(3840, 2160, F30))[-1] == (1920, 1080, 4_500_000)
    assert len(ladder(2560, 1440, F30)) == 3


def test_480p_gets_360p_plus_its_own_size_at_an_interpolated_bitrate() -> None:
    rs = ladder(854, 480, F30)
    assert [(r.width, r.height) for r in rs] == [(640, 360), (854, 480)]
    assert 800_000 < rs[1].video_bitrate < 2_500_000
    # Power law between the 360p and 720p rungs: ~1.28 Mbit/s at 480p.
    assert rs[1].video_bitrate == pytest.approx(1_284_000, rel=0.02)


def test_240p_gets_one_rendition_at_its_own_size() -> None:
    (r,) = ladder(426, 240, F30)
    assert (r.width, r.height) == (426, 240)
    assert 300_000 < r.video_bitrate < 800_000


def test_a_source_just_above_a_rung_is_not_duplicated() -> None:
    assert [(r.width, r.height) for r in ladder(656, 368, F30)] == [(642, 360)]


def test_900p_gets_its_own_size_between_720p_and_1080p() -> None:
    rs = ladder(1600, 900, F30)
    assert [(r.width, r.height) for r in rs] == [(640, 360), (1280, 720), (1600, 900)]
    assert 2_500_000 < rs[-1].video_bitrate < 4_500_000


@pytest.mark.parametrize(
    ("w", "h", "expected"),
    [
        (720, 1280, [(360, 640), (720, 1280)]),
        (1080, 1920, [(360, 640), (720, 1280), (1080, 1920)]),
        (480, 854, [(360, 640), (480, 854)]),
    ],
)
def test_portrait_stays_portrait(w: int, h: int, expected: list[tuple[int, int]]) -> None:
    rs = ladder(w, h, F30)
    assert [(r.width, r.height) for r in rs] == expected
    assert all(r.height > r.width for r in rs)


@pytest.mark.parametrize(
    ("w", "h"), [(1279, 719), (1440, 1080), (1920, 800), (1081, 1921), (999, 333), (2560, 1080)]
)
def test_dimensions_are_even_and_keep_the_aspect(w: int, h: int) -> None:
    for r in ladder(w, h, F30):
        assert r.width % 2 == 0
        assert r.height % 2 == 0
        assert r.width / r.height == pytest.approx(w / h, rel=0.015)
        assert min(r.width, r.height) <= min(w, h)


def test_4_3_source_keeps_4_3() -> None:
    assert [(r.width, r.height) for r in ladder(1440, 1080, F30)] == [
        (480, 360),
        (960, 720),
        (1440, 1080),
    ]


def test_rate_control_and_gop() -> None:
    for r in ladder(1920, 1080, F30):
        assert r.maxrate == round(r.video_bitrate * 1.1)
        assert r.bufsize == 2 * r.video_bitrate
        assert r.gop == 60
        assert r.nominal_bandwidth == r.maxrate + 128_000


def test_forced_preset_applies_to_every_rung() -> None:
    assert {r.preset for r in ladder(1920, 1080, F30, preset="ultrafast")} == {"ultrafast"}
    assert DEFAULT_PRESETS[0] == (720, "veryfast")


# --- frame rate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("avg", "real", "vfr", "expected"),
    [
        (Fraction(60), Fraction(60), False, Fraction(30)),
        (Fraction(50), Fraction(50), False, Fraction(25)),
        (Fraction(120), Fraction(120), False, Fraction(30)),
        (Fraction(30000, 1001), Fraction(30000, 1001), False, Fraction(30000, 1001)),
        (Fraction(60000, 1001), Fraction(60000, 1001), False, Fraction(30000, 1001)),
        (Fraction(24), Fraction(24), False, Fraction(24)),
        (Fraction(15), Fraction(15), False, Fraction(15)),
        # VFR: the nominal rate when sane, else the rounded average.
        (Fraction(2340, 89), Fraction(60), True, Fraction(30)),
        (Fraction(2950, 100), Fraction(30), True, Fraction(30)),
        (Fraction(2740, 100), Fraction(90000), True, Fraction(27)),
        (None, None, False, Fraction(30)),
        (None, Fraction(25), False, Fraction(25)),
    ],
)
def test_output_fps_is_constant_and_capped_at_30(
    avg: Fraction | None, real: Fraction | None, vfr: bool, expected: Fraction
) -> None:
    assert output_fps(avg, real, vfr=vfr) == expected


def test_gop_is_two_seconds_at_the_output_rate() -> None:
    assert ladder(1280, 720, Fraction(25))[0].gop == 50
    assert ladder(1280, 720, Fraction(30000, 1001))[0].gop == 60


@pytest.mark.parametrize(
    ("w", "h", "fps", "level"),
    [
        (426, 240, F30, "2.1"),
        (640, 360, F30, "3.0"),
        (1280, 720, F30, "3.1"),
        (720, 1280, F30, "3.1"),
        (1920, 1080, F30, "4.0"),
        (4096, 1080, F30, "5.0"),
        (1280, 720, Fraction(60), "3.2"),
    ],
)
def test_h264_level(w: int, h: int, fps: Fraction, level: str) -> None:
    assert h264_level(w, h, fps, 5_000_000) == level


# --- whole plan ---------------------------------------------------------------------------


def test_plan_for_a_rotated_phone_clip_is_portrait() -> None:
    plan = plan_transcode(probe_result(1920, 1080, rotation=90))
    assert [(r.width, r.height) for r in plan.renditions] == [(360, 640), (720, 1280), (1080, 1920)]
    assert (plan.download.width, plan.download.height) == (720, 1280)
    assert plan.storyboard.tile_height == 284
    assert (plan.poster.width, plan.poster.height) == (720, 1280)


def test_plan_download_and_poster() -> None:
    plan = plan_transcode(probe_result())
    assert [r.height for r in plan.renditions] == [360, 720, 1080]
    assert plan.download.height == 720
    assert plan.poster.at_s == 6.0
    small = plan_transcode(probe_result(426, 240))
    assert small.download is small.renditions[0]


def test_plan_rejects_an_unvalidated_probe() -> None:
    with pytest.raises(ValueError, match="validated"):
        plan_transcode(ProbeResult("wav", 1000, 10, None, None, None))


def _opt(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


def test_encode_args_are_safe_and_complete() -> None:
    plan = plan_transcode(probe_result())
    args = encode_args(plan, Path("/tmp/in put.mp4"), plan.renditions[1:], with_images=False)
    check_safe_inputs(args)
    assert args.count("-i") == 1
    assert _opt(args, "-i") == ["file:/tmp/in put.mp4"]
    assert _opt(args, "-format_whitelist") == ["mov,mp4,m4a,3gp,3g2,mj2,matroska,webm"]
    # Every output restricted to local files too (hls writes segments through it).
    assert _opt(args, "-protocol_whitelist") == ["file"] * 3
    assert _opt(args, "-hls_segment_filename") == ["v1/seg_%05d.m4s", "v2/seg_%05d.m4s"]
    # ffmpeg's playlists are private: we publish our own (render_media_playlist).
    assert args[-1] == "v2/encoder.m3u8"
    assert _opt(args, "-force_key_frames") == ["expr:gte(t,n_forced*2)"] * 2
    assert _opt(args, "-sc_threshold") == ["0", "0"]
    assert _opt(args, "-g") == ["60", "60"]
    assert _opt(args, "-profile:v") == ["high", "high"]
    assert _opt(args, "-level:v") == ["3.1", "4.0"]
    assert _opt(args, "-maxrate") == ["2750000", "4950000"]
    assert _opt(args, "-bufsize") == ["5000000", "9000000"]
    assert _opt(args, "-hls_time") == ["6", "6"]
    assert _opt(args, "-hls_segment_type") == ["fmp4", "fmp4"]
    # EVENT: ffmpeg rewrites its playlist after every segment, which is what we watch.
    assert _opt(args, "-hls_playlist_type") == ["event", "event"]
    assert _opt(args, "-hls_flags") == ["independent_segments+temp_file"] * 2
    assert _opt(args, "-map_metadata") == ["-1", "-1"]
    assert _opt(args, "-ar") == ["48000", "48000"]
    assert _opt(args, "-b:a") == ["128000", "128000"]
    assert _opt(args, "-map") == ["[v0]", "0:1", "[v1]", "0:1"]
    graph = _opt(args, "-filter_complex")[0]
    assert graph.startswith("[0:0]fps=30/1,split=2[s0][s1];")
    assert "scale=1280:720" in graph
    assert "scale=1920:1080" in graph
    assert _opt(args, "-t") == ["61.000"]
    assert "-readrate" not in args


def test_readrate_caps_how_fast_the_source_is_read() -> None:
    plan = plan_transcode(probe_result())
    args = encode_args(plan, Path("/x.mp4"), plan.renditions, with_images=False, readrate=2.5)
    check_safe_inputs(args)
    assert args.index("-readrate") < args.index("-i")
    assert _opt(args, "-readrate") == ["2.5"]


def test_the_whole_ladder_with_storyboard_and_poster() -> None:
    plan = plan_transcode(probe_result())
    args = encode_args(plan, Path("/x.mp4"), plan.renditions, with_images=True)
    graph = _opt(args, "-filter_complex")[0]
    assert "split=5" in graph
    assert _opt(args, "-hls_segment_filename") == [f"v{i}/seg_%05d.m4s" for i in range(3)]
    assert "select='gte(t,selected_n*2)',scale=160:90,setsar=1,tile=10x3[sb]" in graph
    assert "trim=start=6.000:duration=1,scale=1280:720,setsar=1,thumbnail=n=30[po]" in graph
    assert args[-1] == "poster.jpg"
    assert "storyboard.jpg" in args
    # Renamed into place when whole: a poster that exists may be published mid-encode.
    assert _opt(args, "-atomic_writing") == ["1", "1"]


def test_media_playlist_grows_as_event_and_is_only_appended_to() -> None:
    segments = [MediaSegment("seg_00001.m4s", 6.0), MediaSegment("seg_00002.m4s", 6.0)]
    growing = render_media_playlist("init.mp4", segments, complete=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in growing
    # Players start at the beginning, not at the live edge of a growing playlist.
    assert "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES" in growing
    assert "#EXT-X-ENDLIST" not in growing
    assert parse_media_playlist(growing) == ("init.mp4", segments)

    done = render_media_playlist(
        "init.mp4", [*segments, MediaSegment("seg_00003.m4s", 2.5)], complete=True
    )
    lines = done.splitlines()
    # RFC 8216 §6.2.1: an EVENT playlist may only be appended to (type and target included).
    assert done.startswith(growing)
    assert lines[-1] == "#EXT-X-ENDLIST"
    assert lines[-3:-1] == ["#EXTINF:2.500000,", "seg_00003.m4s"]
    assert "#EXT-X-TARGETDURATION:6" in render_media_playlist(None, [], complete=False)


def test_no_audio_gets_a_silent_track_without_any_extra_input() -> None:
    plan = plan_transcode(probe_result(1280, 720, audio=False, duration_ms=4_500))
    assert plan.audio_index is None
    args = encode_args(plan, Path("/x.mp4"), plan.renditions, with_images=False)
    check_safe_inputs(args)  # no lavfi input: the silence is a source inside the graph
    assert "lavfi" not in args
    graph = _opt(args, "-filter_complex")[0]
    assert "anullsrc=r=48000:cl=stereo,atrim=duration=4.500,asplit=2[a0][a1]" in graph
    assert _opt(args, "-map") == ["[v0]", "[a0]", "[v1]", "[a1]"]


def test_remux_args_are_safe_and_copy() -> None:
    args = remux_download_args(Path("/out/.download.fmp4"))
    check_safe_inputs(args)
    assert _opt(args, "-c") == ["copy"]
    assert _opt(args, "-movflags") == ["+faststart"]
    assert args[-1] == "download.mp4"


# --- storyboard and WebVTT ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "interval", "count", "cols", "rows"),
    [
        (60_000, 2, 30, 10, 3),
        (1_800_000, 18, 100, 10, 10),
        (3_000, 2, 2, 2, 1),
        (4_000, 2, 2, 2, 1),
        (4_100, 2, 3, 3, 1),
        (500, 2, 1, 1, 1),
        (250_000, 3, 84, 10, 9),
    ],
)
def test_storyboard_plan(duration_ms: int, interval: int, count: int, cols: int, rows: int) -> None:
    sb = plan_storyboard(duration_ms, F30, 1280, 720)
    assert (sb.interval_s, sb.count, sb.columns, sb.rows) == (interval, count, cols, rows)
    assert (sb.tile_width, sb.tile_height) == (160, 90)
    assert sb.count <= 101


def test_storyboard_vtt() -> None:
    sb = Storyboard(interval_s=2, count=12, columns=10, rows=2, tile_width=160, tile_height=90)
    vtt = storyboard_vtt(sb, 23_500)
    assert vtt.startswith(
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nstoryboard.jpg#xywh=0,0,160,90\n"
    )
    cues = re.findall(r"(\S+) --> (\S+)\n(\S+)", vtt)
    assert len(cues) == 12
    assert cues[1] == ("00:00:02.000", "00:00:04.000", "storyboard.jpg#xywh=160,0,160,90")
    assert cues[10] == ("00:00:20.000", "00:00:22.000", "storyboard.jpg#xywh=0,90,160,90")
    assert cues[11] == ("00:00:22.000", "00:00:23.500", "storyboard.jpg#xywh=160,90,160,90")


def test_vtt_timestamps_past_an_hour() -> None:
    sb = Storyboard(interval_s=18, count=100, columns=10, rows=10, tile_width=160, tile_height=90)
    vtt = storyboard_vtt(sb, 1_800_000)
    assert "00:59:42.000 --> 01:00:00.000" not in vtt  # 1800 s = 30 min
    assert "00:29:42.000 --> 00:30:00.000\nstoryboard.jpg#xywh=1440,810,160,90" in vtt


# --- playlists ----------------------------------------------------------------------------

MEDIA_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:6.000000,
seg_00001.m4s
#EXTINF:2.500000,
seg_00002.m4s
#EXT-X-ENDLIST
"""


def test_avc1_codecs_from_the_init_segment() -> None:
    box = b"\x00\x00\x00\x30avcC\x01\x64\x00\x1f\xff\xe1"
    assert avc1_codecs(b"ftyp....moov" + box) == "avc1.64001f"
    assert avc1_codecs(b"avcC\x01\x42\xc0\x1e") == "avc1.42c01e"
    assert avc1_codecs(b"no box here") is None
    assert avc1_codecs(b"avcC\x01\x64") is None
    stats = variant_stats([(1000, 1.0)], b"avcC\x01\x4d\x40\x28")
    assert stats is not None
    assert stats.codecs == "avc1.4d4028,mp4a.40.2"
    master = render_master(ladder(1280, 720, F30)[:1], {"v0": stats})
    assert 'CODECS="avc1.4d4028,mp4a.40.2"' in master


def test_parse_media_playlist_and_stats() -> None:
    init, segments = parse_media_playlist(MEDIA_PLAYLIST)
    assert init == "init.mp4"
    assert [(s.uri, s.duration_s) for s in segments] == [
        ("seg_00001.m4s", 6.0),
        ("seg_00002.m4s", 2.5),
    ]
    stats = variant_stats([(600_000, 6.0), (500_000, 2.5)])
    assert stats == VariantStats(peak_bps=1_600_000, average_bps=1_035_295)
    assert variant_stats([]) is None


def test_render_master_lists_every_variant_with_its_attributes() -> None:
    rs = ladder(1920, 1080, F30)
    master = render_master(rs)
    assert master.startswith("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
    entries = re.findall(r"#EXT-X-STREAM-INF:(.*)\n(.*)", master)
    # The <=720p rendition first (start variant), then ascending.
    assert [uri for _, uri in entries] == ["v1/index.m3u8", "v0/index.m3u8", "v2/index.m3u8"]
    attrs = entries[0][0]
    assert "BANDWIDTH=2878000," in attrs
    assert "RESOLUTION=1280x720" in attrs
    assert 'CODECS="avc1.64001f,mp4a.40.2"' in attrs
    assert "FRAME-RATE=30.000" in attrs
    assert "AVERAGE-BANDWIDTH" not in attrs


def test_render_master_uses_the_measured_peak_when_higher() -> None:
    rs = ladder(1280, 720, F30)
    master = render_master(rs, {"v0": VariantStats(peak_bps=1_200_000, average_bps=900_000)})
    assert "BANDWIDTH=1200000,AVERAGE-BANDWIDTH=900000,RESOLUTION=640x360" in master
    low = render_master(rs, {"v0": VariantStats(peak_bps=500_000, average_bps=400_000)})
    assert "BANDWIDTH=1008000,AVERAGE-BANDWIDTH=400000,RESOLUTION=640x360" in low


def test_render_master_with_only_the_first_rendition() -> None:
    rs = ladder(1920, 1080, F30)
    master = render_master(rs[:1])
    assert master.count("#EXT-X-STREAM-INF") == 1
    assert "v0/index.m3u8" in master
    assert "v1/" not in master


# --- a stall-free start ---


def _stalls(encoded_s: float, speed: float, duration_s: float, latency_s: float) -> float:
    """Seconds a real-time player that starts now waits, if the encode keeps `speed`."""
    clock = stall = 0.0
    p = 0.0
    while p < duration_s:
        end = min(p + SEGMENT_S, duration_s)
        ready_at = 0.0 if end <= encoded_s else (end - encoded_s) / speed + latency_s
        if ready_at > clock:
            stall += ready_at - clock
            clock = ready_at
        clock += end - p
        p = end
    return stall


@pytest.mark.parametrize("speed", [0.3, 0.5, 0.8, 1.0, 1.2, 2.0, 4.0])
@pytest.mark.parametrize("duration_s", [14.0, 60.0, 600.0])
def test_a_stall_free_start_never_stalls(speed: float, duration_s: float) -> None:
    """At the first segment boundary where it says yes, a simulated player never waits; an
    encode well faster than real time says yes at its first segment."""
    boundaries = [min(k * SEGMENT_S, duration_s) for k in range(1, int(duration_s // 6) + 2)]
    first_yes = next(
        e for e in boundaries if stall_free_start(e, e / speed, duration_s, speed_margin=1.0)
    )
    assert _stalls(first_yes, speed, duration_s, START_LATENCY_S) == 0
    if speed >= 2:  # a clearly faster worker: at once
        assert first_yes == SEGMENT_S
    elif first_yes > SEGMENT_S:  # publishing at the first segment would have stalled
        assert _stalls(SEGMENT_S, speed, duration_s, START_LATENCY_S) > 0


def test_a_fast_encode_is_viewable_after_its_first_segment() -> None:
    assert stall_free_start(SEGMENT_S, SEGMENT_S / 2, 600)  # 2x real time
    assert not stall_free_start(0, 1, 600)


def test_a_slow_encode_waits_until_it_ends_with_the_playback() -> None:
    # 0.5x real time over 60 s: a player that starts at 40 s encoded (80 s in) needs the last
    # segment (54 s on) 54 s later; the remaining 20 s take 40 s (46 s, discounted).
    assert not stall_free_start(30, 60, 60)
    assert stall_free_start(40, 80, 60)
    assert stall_free_start(60, 120, 60)  # done


def test_the_speed_is_discounted() -> None:
    # Exactly at the edge without a margin; the default margin asks for more.
    assert stall_free_start(33, 66, 60, speed_margin=1.0, latency_s=0)
    assert not stall_free_start(33, 66, 60)
