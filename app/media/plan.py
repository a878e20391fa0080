"""Pure planning: from a ProbeResult to renditions, ffmpeg argument lists and playlists.

Nothing here runs a process or touches the disk, so all of it is unit-tested without ffmpeg.

Design (numbers: 60 s 1080p30 H.264 source, 2 cores, bench/transcode_core.py): ONE ffmpeg
process encodes the whole ladder from one decode (`split`, a scale and an x264 per rung, one
HLS muxer per rung: per-output muxers give a fixed `vN/init.mp4` layout that
`-var_stream_map` cannot), plus the storyboard sprite and the poster from branches of the
same decoded frames. The outputs advance in lockstep, so the clip is made viewable
*progressively*: ffmpeg writes an EVENT playlist per rung (`encoder.m3u8`, private) after
every segment, and the worker publishes each new segment of every rung, then our own
playlists (`index.m3u8`, see `render_media_playlist`): EVENT with `EXT-X-START` at 0
(players start at the beginning, not at a live edge, and follow the playlist as it
grows; where a worker encodes slower than real time, a viewer who starts at once catches up
with the encode and waits for segments, as in a live stream), and ENDLIST once done.
The first 6 s segment makes the clip viewable (0.17x the duration in bench/transcode.py);
it is ready when ffmpeg ends. Rejected: a fast lowest-rung pass first and the rest of the
ladder in a second process (a complete VOD playlist early, but a second decode of the
source: ~10% more CPU, and viewable only after the whole lowest rung, ~0.2x).

The MP4 download is not encoded at all: it is the <=720p rendition's fMP4 segments remuxed
(`-c copy -movflags +faststart`), which saves a whole 720p encode. The master playlist is
written by us (`render_master`): BANDWIDTH/CODECS describe the real segments (ffmpeg 5.1's
own master estimates BANDWIDTH as 1.1 x nominal).

Keyframes are forced at every 2 s of output time (`expr:gte(t,n_forced*2)`, no scene-cut
keyframes), so all renditions have identical 6 s segment boundaries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from app.media.probe import VIDEO_FORMATS, ProbeResult, input_args

# (short side, video bitrate in bit/s), DESIGN.md §6.
RUNGS: tuple[tuple[int, int], ...] = ((360, 800_000), (720, 2_500_000), (1080, 4_500_000))
# A source between rungs gets its own size only if it is this much bigger than the rung
# below (a 368p source is just encoded as 360p).
OWN_SIZE_MIN_RATIO = 1.1
# Below the lowest rung, bitrate ~ short_side^1.5 (pixels^0.75): small pictures need more
# bits per pixel.
SMALL_EXPONENT = 1.5
AUDIO_BITRATE = 128_000
AUDIO_RATE = 48_000
MAX_FPS = Fraction(30)
GOP_S = 2
SEGMENT_S = 6
DOWNLOAD_MAX_SHORT = 720
# x264 preset by rendition short side (first match). The 1080p rung costs ~45% of all CPU on
# its own; a faster preset there is what keeps the ladder under 0.7x real time on 2 cores,
# and at 4.5 Mbit/s its quality cost is smallest (measured in bench/transcode_core.py).
DEFAULT_PRESETS: tuple[tuple[int, str], ...] = ((720, "veryfast"), (100_000, "superfast"))

STORYBOARD_TILE_WIDTH = 160
STORYBOARD_COLUMNS = 10
STORYBOARD_MAX_TILES = 100
STORYBOARD_MIN_INTERVAL_S = 2
POSTER_POSITION = 0.1  # fraction of the duration: past fade-ins and black first frames

MASTER = "master.m3u8"
DOWNLOAD = "download.mp4"
POSTER = "poster.jpg"
STORYBOARD_JPG = "storyboard.jpg"
STORYBOARD_VTT = "storyboard.vtt"

# H.264 Annex A: level -> (MaxMBPS, MaxFS, MaxBR in kbit/s for Baseline/Main).
_LEVELS: tuple[tuple[str, int, int, int], ...] = (
    ("2.0", 11_880, 396, 2_000),
    ("2.1", 19_800, 792, 4_000),
    ("2.2", 20_250, 1_620, 4_000),
    ("3.0", 40_500, 1_620, 10_000),
    ("3.1", 108_000, 3_600, 14_000),
    ("3.2", 216_000, 5_120, 20_000),
    ("4.0", 245_760, 8_192, 20_000),
    ("4.1", 245_760, 8_192, 50_000),
    ("4.2", 522_240, 8_704, 50_000),
    ("5.0", 589_824, 22_080, 135_000),
    ("5.1", 983_040, 36_864, 240_000),
    ("5.2", 2_073_600, 36_864, 240_000),
)
_HIGH_BR_FACTOR = 1.25  # High profile may use 1.25x MaxBR


def _even(x: float) -> int:
    return max(2, 2 * round(x / 2))


def h264_level(width: int, height: int, fps: Fraction, maxrate: int) -> str:
    """Smallest level whose frame size, macroblock rate and bitrate limits fit."""
    mbs_w, mbs_h = math.ceil(width / 16), math.ceil(height / 16)
    frame_mbs = mbs_w * mbs_h
    for level, max_mbps, max_fs, max_br in _LEVELS:
        if (
            frame_mbs <= max_fs
            and max(mbs_w, mbs_h) ** 2 <= 8 * max_fs
            and frame_mbs * fps <= max_mbps
            and maxrate <= max_br * 1000 * _HIGH_BR_FACTOR
        ):
            return level
    return _LEVELS[-1][0]


@dataclass(frozen=True)
class Rendition:
    name: str  # directory of its HLS files: "v0" (lowest) ...
    width: int
    height: int
    video_bitrate: int
    fps: Fraction
    level: str
    preset: str = "veryfast"  # x264 preset

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)

    @property
    def maxrate(self) -> int:
        return round(self.video_bitrate * 1.1)

    @property
    def bufsize(self) -> int:
        return self.video_bitrate * 2

    @property
    def gop(self) -> int:
        return max(1, round(self.fps * GOP_S))

    @property
    def codecs(self) -> str:
        level_idc = round(float(self.level) * 10)
        return f"avc1.6400{level_idc:02x},mp4a.40.2"

    @property
    def nominal_bandwidth(self) -> int:
        return self.maxrate + AUDIO_BITRATE

    @property
    def playlist(self) -> str:
        return f"{self.name}/index.m3u8"

    @property
    def encoder_playlist(self) -> str:
        """ffmpeg's own playlist, read while it encodes; never published."""
        return f"{self.name}/encoder.m3u8"

    @property
    def init_segment(self) -> str:
        return f"{self.name}/init.mp4"

    @property
    def segment_pattern(self) -> str:
        return f"{self.name}/seg_%05d.m4s"


@dataclass(frozen=True)
class Storyboard:
    interval_s: int
    count: int
    columns: int
    rows: int
    tile_width: int
    tile_height: int

    @property
    def width(self) -> int:
        return self.columns * self.tile_width

    @property
    def height(self) -> int:
        return self.rows * self.tile_height


@dataclass(frozen=True)
class Poster:
    at_s: float
    width: int
    height: int
    window_frames: int  # the `thumbnail` filter picks the most typical frame of this window


@dataclass(frozen=True)
class TranscodePlan:
    duration_ms: int
    video_index: int
    audio_index: int | None  # None: the source has no audio; a silent track is added
    fps: Fraction
    renditions: tuple[Rendition, ...]  # ascending size
    download: Rendition  # the largest rendition whose short side <= 720, remuxed to MP4
    poster: Poster
    storyboard: Storyboard


def output_fps(avg: Fraction | None, real: Fraction | None, *, vfr: bool) -> Fraction:
    """Constant output rate: the source's rate divided by the smallest integer that brings
    it to <= 30 (60 -> 30, 50 -> 25, 29.97 stays). A VFR source (phones drop frames in low
    light) uses its nominal rate `r_frame_rate` when sane, else its average rounded; the
    `fps` filter duplicates frames into the gaps."""
    src = avg or real
    if src is None:
        return MAX_FPS
    if vfr and avg is not None:
        nominal_ok = real is not None and avg <= real <= 120
        src = real if nominal_ok and real is not None else Fraction(max(1, round(avg)))
    divisor = math.ceil(src / MAX_FPS)
    return src / divisor


def _interpolated_bitrate(short: int) -> int:
    """Bitrate for a rendition at the source's own size between/below the rungs: a power
    law through the neighbouring rungs (log-log interpolation), rounded to 10 kbit/s."""
    bitrate: float
    below = [r for r in RUNGS if r[0] <= short]
    above = [r for r in RUNGS if r[0] > short]
    if not below:
        s1, b1 = RUNGS[0]
        bitrate = b1 * float((short / s1) ** SMALL_EXPONENT)
    elif not above:
        bitrate = below[-1][1]
    else:
        (s1, b1), (s2, b2) = below[-1], above[0]
        exponent = math.log(b2 / b1) / math.log(s2 / s1)
        bitrate = b1 * float((short / s1) ** exponent)
    return max(10_000, round(bitrate / 10_000) * 10_000)


def default_preset(short_side: int) -> str:
    return next(p for limit, p in DEFAULT_PRESETS if short_side <= limit)


def ladder(
    display_width: int, display_height: int, fps: Fraction, *, preset: str | None = None
) -> tuple[Rendition, ...]:
    """Renditions by the short side, never upscaled, aspect kept, even dimensions.

    Portrait sources keep portrait renditions (their short side is the width). `preset`
    forces one x264 preset for all (tests use ultrafast); None picks DEFAULT_PRESETS."""
    short, long_ = sorted((display_width, display_height))
    portrait = display_height > display_width
    sizes: list[tuple[int, int]] = [(s, b) for s, b in RUNGS if s <= short]
    top_rung = RUNGS[-1][0]
    if short < top_rung and (not sizes or short >= sizes[-1][0] * OWN_SIZE_MIN_RATIO):
        sizes.append((short, _interpolated_bitrate(short)))
    renditions = []
    for i, (s, bitrate) in enumerate(sizes):
        s_even = _even(s) if s != short else short - short % 2
        l_even = _even(long_ * s / short) if s != short else long_ - long_ % 2
        w, h = (s_even, l_even) if portrait else (l_even, s_even)
        maxrate = round(bitrate * 1.1)
        renditions.append(
            Rendition(
                name=f"v{i}",
                width=w,
                height=h,
                video_bitrate=bitrate,
                fps=fps,
                level=h264_level(w, h, fps, maxrate),
                preset=preset or default_preset(min(w, h)),
            )
        )
    return tuple(renditions)


def plan_storyboard(duration_ms: int, fps: Fraction, width: int, height: int) -> Storyboard:
    """Tiles every `interval_s` (>= 2 s, <= ~100 tiles), 160 px wide, 10 per row.

    `count` matches what `select='gte(t,selected_n*interval)'` emits over CFR frames at
    `fps`: the frames at or after 0, interval, 2*interval, ... up to the last frame."""
    duration_s = duration_ms / 1000
    interval = max(STORYBOARD_MIN_INTERVAL_S, math.ceil(duration_s / STORYBOARD_MAX_TILES))
    last_frame_t = max(0.0, duration_s - 1 / float(fps))
    count = min(STORYBOARD_MAX_TILES + 1, math.floor(last_frame_t / interval + 1e-6) + 1)
    columns = min(STORYBOARD_COLUMNS, count)
    tile_h = _even(STORYBOARD_TILE_WIDTH * height / width)
    return Storyboard(
        interval_s=interval,
        count=count,
        columns=columns,
        rows=math.ceil(count / columns),
        tile_width=STORYBOARD_TILE_WIDTH,
        tile_height=tile_h,
    )


def plan_transcode(probe: ProbeResult, *, preset: str | None = None) -> TranscodePlan:
    """The whole plan for a validated probe result (`preset`: see `ladder`)."""
    video = probe.video
    if video is None or not probe.duration_ms:
        raise ValueError("plan_transcode needs a validated probe result")
    fps = output_fps(video.avg_frame_rate, video.r_frame_rate, vfr=video.is_vfr)
    renditions = ladder(video.display_width, video.display_height, fps, preset=preset)
    download = [r for r in renditions if r.short_side <= DOWNLOAD_MAX_SHORT][-1]
    duration_ms = video.duration_ms or probe.duration_ms
    duration_ms = min(duration_ms, probe.duration_ms)
    return TranscodePlan(
        duration_ms=duration_ms,
        video_index=video.index,
        audio_index=probe.audio.index if probe.audio else None,
        fps=fps,
        renditions=renditions,
        download=download,
        poster=Poster(
            at_s=round(duration_ms / 1000 * POSTER_POSITION, 3),
            width=download.width,
            height=download.height,
            window_frames=max(1, round(fps)),
        ),
        storyboard=plan_storyboard(duration_ms, fps, download.width, download.height),
    )


# --- ffmpeg argument lists --------------------------------------------------------------


# A stall-free start (`stall_free_start`): the measured encode speed is discounted by this
# much (it is measured over a few seconds of a shared machine), and a stored segment reaches
# players up to this late (the worker looks for new segments once a second, then stores
# them).
START_SPEED_MARGIN = 0.9
START_LATENCY_S = 1.0


def stall_free_start(
    encoded_s: float,
    elapsed_s: float,
    duration_s: float,
    *,
    segment_s: float = SEGMENT_S,
    speed_margin: float = START_SPEED_MARGIN,
    latency_s: float = START_LATENCY_S,
) -> bool:
    """Whether a player that starts now, from the beginning, in real time, finds each next
    segment stored before it needs it, if the encode goes on at its speed so far
    (`encoded_s` of media in `elapsed_s`).

    The segment starting at p (p >= encoded_s) is stored (p + its length - encoded_s) / speed
    + latency from now; the player needs it p from now. That margin is linear in p, so the
    first and the last segment to come decide: an encode faster than real time is ahead
    once its first segment is stored; a slower one must first get far enough that it ends
    no later than the playback does.
    """
    if encoded_s <= 0:
        return False
    if encoded_s >= duration_s:
        return True
    speed = encoded_s / max(elapsed_s, 1e-3) * speed_margin
    last = max(encoded_s, duration_s - segment_s)
    return all(
        (min(p + segment_s, duration_s) - encoded_s) / speed + latency_s <= p
        for p in (encoded_s, last)
    )


def _fps_str(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def encode_args(
    plan: TranscodePlan,
    source: Path,
    renditions: Sequence[Rendition],
    *,
    with_images: bool,
    x264_threads: int | None = None,
    readrate: float | None = None,
) -> list[str]:
    """One ffmpeg invocation (without global flags, see runner.run_ffmpeg) that encodes
    `renditions` to HLS, each as its own output writing `encoder_playlist` after every
    segment, plus storyboard and poster if `with_images` (written atomically, so a file that
    exists is whole).

    `readrate`: read the source no faster than this many times real time (None: as fast as
    possible).

    Output paths are relative: run it with cwd = the output folder, after creating the
    rendition directories."""
    if not renditions:
        raise ValueError("nothing to encode")
    n = len(renditions)
    branches = n + (2 if with_images else 0)
    graph = [
        f"[0:{plan.video_index}]fps={_fps_str(plan.fps)},split={branches}"
        + "".join(f"[s{i}]" for i in range(branches))
    ]
    for i, r in enumerate(renditions):
        graph.append(f"[s{i}]scale={r.width}:{r.height},setsar=1,format=yuv420p[v{i}]")
    if with_images:
        sb, po = plan.storyboard, plan.poster
        graph.append(
            f"[s{n}]select='gte(t,selected_n*{sb.interval_s})',"
            f"scale={sb.tile_width}:{sb.tile_height},setsar=1,"
            f"tile={sb.columns}x{sb.rows}[sb]"
        )
        graph.append(
            f"[s{n + 1}]trim=start={po.at_s:.3f}:duration=1,"
            f"scale={po.width}:{po.height},setsar=1,thumbnail=n={po.window_frames}[po]"
        )
    audio_labels = [f"0:{plan.audio_index}"] * n
    if plan.audio_index is None:
        # A silent track keeps every clip shaped alike (players, the MP4) and needs no input.
        graph.append(
            f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=duration={_seconds(plan.duration_ms)},"
            f"asplit={n}" + "".join(f"[a{i}]" for i in range(n))
        )
        audio_labels = [f"[a{i}]" for i in range(n)]

    # -t caps reading at the probed duration: a file lying about its length cannot keep us busy.
    args = ["-t", _seconds(plan.duration_ms + 1000)]
    if readrate is not None:
        args += ["-readrate", f"{readrate:g}"]
    args += [*input_args(source, VIDEO_FORMATS), "-filter_complex", ";".join(graph)]
    for i, r in enumerate(renditions):
        args += ["-map", f"[v{i}]", "-map", audio_labels[i]]
        args += _h264_args(r, x264_threads)
        args += ["-c:a", "aac", "-b:a", str(AUDIO_BITRATE), "-ac", "2", "-ar", str(AUDIO_RATE)]
        args += _common_output_args()
        args += [
            "-f", "hls",
            "-hls_time", str(SEGMENT_S),
            # EVENT: the playlist is rewritten after every segment (a VOD one only at the
            # end), renamed into place whole (temp_file), as are the segments.
            "-hls_playlist_type", "event",
            "-hls_segment_type", "fmp4",
            "-hls_flags", "independent_segments+temp_file",
            "-hls_fmp4_init_filename", "init.mp4",
            "-hls_segment_filename", r.segment_pattern,
            "-start_number", "1",
            "-protocol_whitelist", "file",
            r.encoder_playlist,
        ]  # fmt: skip
    if with_images:
        for label, name in (("[sb]", STORYBOARD_JPG), ("[po]", POSTER)):
            # Quality 3 as -qmin/-qmax: with -q:v (qscale), ffmpeg 5.1 holds the image back
            # until the whole encode ends, and the poster should come with the first segments.
            args += ["-map", label, "-frames:v", "1", "-c:v", "mjpeg", "-qmin", "3", "-qmax", "3"]
            args += _common_output_args()
            args += ["-f", "image2", "-update", "1", "-atomic_writing", "1"]
            args += ["-protocol_whitelist", "file", name]
    return args


def _h264_args(r: Rendition, threads: int | None) -> list[str]:
    args = [
        "-c:v", "libx264",
        "-preset", r.preset,
        "-profile:v", "high",
        "-level:v", r.level,
        "-b:v", str(r.video_bitrate),
        "-maxrate", str(r.maxrate),
        "-bufsize", str(r.bufsize),
        "-g", str(r.gop),
        "-keyint_min", str(r.gop),
        "-sc_threshold", "0",
        "-force_key_frames", f"expr:gte(t,n_forced*{GOP_S})",
        "-fps_mode", "cfr",
    ]  # fmt: skip
    if threads is not None:
        args += ["-threads", str(threads)]
    return args


def _common_output_args() -> list[str]:
    # Phone videos carry GPS location and device names in metadata: never copy any of it.
    return ["-map_metadata", "-1", "-map_chapters", "-1"]


def remux_download_args(fragmented: Path) -> list[str]:
    """Turn the concatenated init+segments of the download rendition into a progressive MP4
    with the index in front (`+faststart`), without re-encoding."""
    return [
        *input_args(fragmented, VIDEO_FORMATS),
        "-map", "0",
        "-c", "copy",
        *_common_output_args(),
        "-movflags", "+faststart",
        "-f", "mp4",
        "-protocol_whitelist", "file",
        DOWNLOAD,
    ]  # fmt: skip


# --- playlists and WebVTT ---------------------------------------------------------------


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def storyboard_vtt(storyboard: Storyboard, duration_ms: int, sprite: str = STORYBOARD_JPG) -> str:
    """WebVTT thumbnails track: one cue per tile, `sprite#xywh=x,y,w,h`."""
    duration_s = duration_ms / 1000
    lines = ["WEBVTT", ""]
    for k in range(storyboard.count):
        start = k * storyboard.interval_s
        end = duration_s if k == storyboard.count - 1 else (k + 1) * storyboard.interval_s
        end = max(end, start + 0.001)
        x = (k % storyboard.columns) * storyboard.tile_width
        y = (k // storyboard.columns) * storyboard.tile_height
        lines += [
            f"{_vtt_time(start)} --> {_vtt_time(end)}",
            f"{sprite}#xywh={x},{y},{storyboard.tile_width},{storyboard.tile_height}",
            "",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class VariantStats:
    """Measured on the finished rendition: bit/s of its segments (audio and container
    included) and the codec string of what the encoder really wrote."""

    peak_bps: int
    average_bps: int
    codecs: str | None = None


def avc1_codecs(init_segment: bytes) -> str | None:
    """RFC 6381 codec string from the avcC box of an init segment, e.g. "avc1.64001f".

    `-profile:v high` is only a ceiling (x264 signals Constrained Baseline when a preset
    turns off CABAC and B-frames), so the master must describe the stream, not the plan."""
    at = init_segment.find(b"avcC")
    record = init_segment[at + 4 : at + 8] if at >= 0 else b""
    if len(record) < 4 or record[0] != 1:
        return None
    return f"avc1.{record[1]:02x}{record[2]:02x}{record[3]:02x}"


@dataclass(frozen=True)
class MediaSegment:
    uri: str
    duration_s: float


_EXTINF = re.compile(r"#EXTINF:([0-9.]+)")


def parse_media_playlist(text: str) -> tuple[str | None, list[MediaSegment]]:
    """(init segment URI, segments) of an HLS media playlist we wrote."""
    init = None
    segments = []
    pending: float | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-MAP:"):
            found = re.search(r'URI="([^"]+)"', line)
            init = found.group(1) if found else None
        elif match := _EXTINF.match(line):
            pending = float(match.group(1))
        elif line and not line.startswith("#") and pending is not None:
            segments.append(MediaSegment(line, pending))
            pending = None
    return init, segments


def render_media_playlist(
    init: str | None, segments: Sequence[MediaSegment], *, complete: bool
) -> str:
    """The playlist we publish for a rendition: an EVENT playlist, which players reload as it
    grows while the clip is encoded, with `EXT-X-START` at 0 so they start at the beginning,
    not at the "live" edge; once done (`complete`) the same text plus ENDLIST. The text of
    a growing playlist is only ever appended to (RFC 8216 §6.2.1: an EVENT playlist may not
    change otherwise, not even its type), and EVENT with ENDLIST plays as a finished one.
    TARGETDURATION is the segment length: every segment is cut at a forced keyframe, so
    none is longer (the max() only guards against a rounding surprise)."""
    longest = max((round(s.duration_s) for s in segments), default=SEGMENT_S)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{max(SEGMENT_S, longest)}",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-START:TIME-OFFSET=0,PRECISE=YES",
    ]
    if init:
        lines.append(f'#EXT-X-MAP:URI="{init}"')
    for segment in segments:
        lines += [f"#EXTINF:{segment.duration_s:.6f},", segment.uri]
    if complete:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def variant_stats(
    segments: Sequence[tuple[int, float]], init_segment: bytes = b""
) -> VariantStats | None:
    """From (size in bytes, duration in s) per segment: peak and average bit rates."""
    usable = [(size, d) for size, d in segments if d > 0]
    if not usable:
        return None
    # A short last segment's rate is noisy; Apple's validator measures it too, so we keep it.
    peak = max(size * 8 / d for size, d in usable)
    average = sum(s for s, _ in usable) * 8 / sum(d for _, d in usable)
    video = avc1_codecs(init_segment)
    return VariantStats(
        peak_bps=math.ceil(peak),
        average_bps=math.ceil(average),
        codecs=f"{video},mp4a.40.2" if video else None,
    )


def render_master(
    renditions: Sequence[Rendition], stats: Mapping[str, VariantStats] | None = None
) -> str:
    """Master playlist for `renditions` (those that exist). BANDWIDTH is the larger of the
    nominal peak (maxrate + audio) and the measured peak segment rate; AVERAGE-BANDWIDTH the
    measured average; CODECS the measured codec string, else the planned one. The largest
    rendition <= 720p is listed first: many players start with the first variant, and it is
    a safe start on phones."""
    stats = stats or {}
    ordered = sorted(renditions, key=lambda r: r.short_side)
    start = [r for r in ordered if r.short_side <= DOWNLOAD_MAX_SHORT][-1:] or ordered[:1]
    ordered = start + [r for r in ordered if r not in start]
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r in ordered:
        measured = stats.get(r.name)
        attrs = [f"BANDWIDTH={max(r.nominal_bandwidth, measured.peak_bps if measured else 0)}"]
        if measured:
            attrs.append(f"AVERAGE-BANDWIDTH={measured.average_bps}")
        attrs += [
            f"RESOLUTION={r.width}x{r.height}",
            f"FRAME-RATE={float(r.fps):.3f}",
            f'CODECS="{measured.codecs if measured and measured.codecs else r.codecs}"',
        ]
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), r.playlist]
    return "\n".join(lines) + "\n"
