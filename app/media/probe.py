"""Probe an uploaded file with ffprobe and decide whether we accept it.

`probe()` runs ffprobe under the safe flags of `app.media.runner` and parses its JSON into a
`ProbeResult`; `validate()` is a pure function that raises `MediaRejected` with the error code
the clip gets. Rejection messages are shown to the uploader, so they never echo anything the
file controls (tags, ffmpeg output), only numbers and codec names from ffmpeg's own tables.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from app.media.errors import FfmpegFailed, MediaRejected
from app.media.runner import DEFAULT_LIMITS, Limits, run_ffprobe

# Demuxers we feed to ffmpeg. The mov demuxer's short names (all of them match) and matroska's.
VIDEO_FORMATS: tuple[str, ...] = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm")
# Probing also opens plain audio containers, only so an audio file is reported as
# `no_video_stream` rather than `invalid_media`; none of them can reference other files.
AUDIO_ONLY_FORMATS: tuple[str, ...] = ("wav", "mp3", "flac", "ogg", "aac")
PROBE_FORMATS = VIDEO_FORMATS + AUDIO_ONLY_FORMATS

# Decoders we trust with hostile input and that real uploads use (phones, browsers'
# MediaRecorder, screen recorders, cameras). Exotic decoders are attack surface for no gain.
VIDEO_CODECS = frozenset(
    {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "h263", "mpeg2video", "prores", "mjpeg"}
)
AUDIO_CODECS = frozenset(
    {"aac", "mp3", "mp2", "opus", "vorbis", "flac", "alac", "ac3", "eac3", "amr_nb", "amr_wb"}
    | {"pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le"}
    | {"pcm_u8", "pcm_alaw", "pcm_mulaw"}
)
MIN_DIMENSION = 16
MAX_SANE_FPS = 240
PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class VideoStream:
    index: int  # absolute stream index in the file (for `-map 0:<index>`)
    codec: str
    width: int  # coded size
    height: int
    # Clockwise degrees a player turns the coded picture (0/90/180/270), the convention of
    # the legacy `rotate` tag; ffmpeg applies it when decoding (autorotate).
    rotation: int
    display_width: int  # as a player shows it: after rotation and sample aspect ratio
    display_height: int
    avg_frame_rate: Fraction | None
    r_frame_rate: Fraction | None
    bit_rate: int | None
    duration_ms: int | None
    pix_fmt: str | None = None

    @property
    def fps(self) -> Fraction | None:
        return self.avg_frame_rate or self.r_frame_rate

    @property
    def is_vfr(self) -> bool:
        # No sane r_frame_rate (only a timebase like 1000/1) also means irregular timestamps.
        a, r = self.avg_frame_rate, self.r_frame_rate
        return a is not None and a != r


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    channels: int | None
    sample_rate: int | None
    bit_rate: int | None


@dataclass(frozen=True)
class ProbeResult:
    format_name: str  # ffprobe's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration_ms: int | None
    size_bytes: int | None
    bit_rate: int | None
    video: VideoStream | None  # the first real video stream (attached pictures excluded)
    audio: AudioStream | None  # the default (else first) audio stream
    video_streams: int = 0

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    @property
    def container(self) -> str:
        names = self.format_name.split(",")
        return "mp4" if "mp4" in names else names[0]

    def metadata(self) -> dict[str, Any]:
        """JSON-ready facts to store on the clip."""
        v = self.video
        return {
            "container": self.container,
            "duration_ms": self.duration_ms,
            "width": v.display_width if v else None,
            "height": v.display_height if v else None,
            "rotation": v.rotation if v else None,
            "fps": round(float(v.fps), 3) if v and v.fps else None,
            "is_vfr": v.is_vfr if v else None,
            "video_codec": v.codec if v else None,
            "has_audio": self.has_audio,
            "audio_codec": self.audio.codec if self.audio else None,
            "bit_rate": self.bit_rate,
            "size_bytes": self.size_bytes,
        }


def _int(value: Any) -> int | None:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n


def _seconds_ms(value: Any) -> int | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return round(seconds * 1000)


def _ratio(value: Any) -> Fraction | None:
    """'30000/1001' or '32:27' → Fraction; '0/0', '0:1' and garbage → None."""
    if not isinstance(value, str):
        return None
    num, _, den = value.replace(":", "/").partition("/")
    try:
        ratio = Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return None
    return ratio if ratio > 0 else None


def _rate(value: Any) -> Fraction | None:
    # Above MAX_SANE_FPS it is a timebase (Matroska's 1000/1, MPEG's 90000/1), not a rate.
    rate = _ratio(value)
    return rate if rate is not None and rate <= MAX_SANE_FPS else None


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            try:
                # The display matrix angle is counter-clockwise.
                return round(-float(side["rotation"]) / 90) * 90 % 360
            except (TypeError, ValueError):
                break
    tag = (stream.get("tags") or {}).get("rotate")
    try:
        return round(float(tag) / 90) * 90 % 360 if tag is not None else 0
    except (TypeError, ValueError):
        return 0


def _display_size(width: int, height: int, sar: Any, rotation: int) -> tuple[int, int]:
    ratio = _ratio(sar)
    if ratio is not None and ratio != 1 and Fraction(1, 10) < ratio < 10:
        width = round(width * ratio)
    return (height, width) if rotation in (90, 270) else (width, height)


def _video(stream: dict[str, Any]) -> VideoStream | None:
    width, height = _int(stream.get("width")) or 0, _int(stream.get("height")) or 0
    rotation = _rotation(stream)
    dw, dh = _display_size(width, height, stream.get("sample_aspect_ratio"), rotation)
    return VideoStream(
        index=_int(stream.get("index")) or 0,
        codec=str(stream.get("codec_name") or "unknown"),
        width=width,
        height=height,
        rotation=rotation,
        display_width=dw,
        display_height=dh,
        avg_frame_rate=_rate(stream.get("avg_frame_rate")),
        r_frame_rate=_rate(stream.get("r_frame_rate")),
        bit_rate=_int(stream.get("bit_rate")),
        duration_ms=_seconds_ms(stream.get("duration")),
        pix_fmt=stream.get("pix_fmt"),
    )


def parse_probe(data: dict[str, Any]) -> ProbeResult:
    """Pure: ffprobe `-show_format -show_streams` JSON → ProbeResult."""
    fmt = data.get("format") or {}
    streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video"
        and not (s.get("disposition") or {}).get("attached_pic")
        # Cover art stored as a 1-frame "video" in Matroska/MP4 attachments.
        and s.get("codec_name") not in ("png", "bmp", "gif", "webp")
    ]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    default_audio = next(
        (s for s in audios if (s.get("disposition") or {}).get("default")),
        audios[0] if audios else None,
    )
    video = _video(videos[0]) if videos else None
    duration = _seconds_ms(fmt.get("duration"))
    if not duration and video is not None:
        duration = video.duration_ms
    audio = None
    if default_audio is not None:
        audio = AudioStream(
            index=_int(default_audio.get("index")) or 0,
            codec=str(default_audio.get("codec_name") or "unknown"),
            channels=_int(default_audio.get("channels")),
            sample_rate=_int(default_audio.get("sample_rate")),
            bit_rate=_int(default_audio.get("bit_rate")),
        )
    return ProbeResult(
        format_name=str(fmt.get("format_name") or ""),
        duration_ms=duration or None,
        size_bytes=_int(fmt.get("size")),
        bit_rate=_int(fmt.get("bit_rate")),
        video=video,
        audio=audio,
        video_streams=len(videos),
    )


def input_args(path: Path, formats: tuple[str, ...] = VIDEO_FORMATS) -> list[str]:
    """The only way app.media opens an untrusted file: local files, whitelisted demuxers.

    `file:` plus an absolute path keeps names like `concat:…` or `-x` from being read as
    protocols or options.
    """
    return [
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        ",".join(formats),
        "-i",
        f"file:{path.absolute()}",
    ]


_NOT_READABLE = "The file is not a video in a supported format (MP4, MOV, 3GP, MKV or WebM)."


async def probe(
    path: Path, *, timeout_s: float = PROBE_TIMEOUT_S, limits: Limits = DEFAULT_LIMITS
) -> ProbeResult:
    """ffprobe `path`. Raises MediaRejected("invalid_media") for empty or unreadable files,
    FfmpegFailed/FfmpegTimeout when ffprobe itself was killed (transient)."""
    if (await asyncio.to_thread(path.stat)).st_size == 0:
        raise MediaRejected("invalid_media", "The file is empty.")
    args = ["-of", "json", "-show_format", "-show_streams", *input_args(path, PROBE_FORMATS)]
    try:
        raw = await run_ffprobe(args, timeout_s=timeout_s, limits=limits)
        data = json.loads(raw or b"{}")
    except FfmpegFailed as exc:
        if exc.returncode > 0:  # ffprobe refused the file; < 0 means killed by a signal
            raise MediaRejected("invalid_media", _NOT_READABLE) from None
        raise
    except ValueError:  # ffprobe printed something that is not JSON
        raise MediaRejected("invalid_media", _NOT_READABLE) from None
    if not isinstance(data, dict):
        raise MediaRejected("invalid_media", _NOT_READABLE)
    result = parse_probe(data)
    if result.video is not None and result.duration_ms is None:
        # e.g. WebM from a browser's MediaRecorder carries no duration: measure it.
        duration = await _scan_duration_ms(path, result.video.index, timeout_s, limits)
        result = replace(result, duration_ms=duration)
    return result


async def _scan_duration_ms(path: Path, index: int, timeout_s: float, limits: Limits) -> int | None:
    args = [
        "-of",
        "csv=p=0",
        "-select_streams",
        str(index),
        "-show_entries",
        "packet=pts_time,duration_time",
        *input_args(path, VIDEO_FORMATS),
    ]
    try:
        raw = await run_ffprobe(args, timeout_s=timeout_s, limits=limits)
    except FfmpegFailed as exc:
        if exc.returncode > 0:
            raise MediaRejected("invalid_media", _NOT_READABLE) from None
        raise
    first = end = None
    for line in raw.decode("ascii", errors="replace").splitlines():
        pts_s, _, dur_s = line.partition(",")
        try:
            pts = float(pts_s)
        except ValueError:
            continue
        try:
            dur = float(dur_s)
        except ValueError:
            dur = 0.0
        first = pts if first is None else min(first, pts)
        end = pts + dur if end is None else max(end, pts + dur)
    if first is None or end is None or end <= first:
        return None
    return round((end - first) * 1000)


def _fmt_duration(ms: int) -> str:
    s = round(ms / 1000)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def validate(result: ProbeResult, *, max_duration_s: int, max_dimension: int) -> None:
    """Raise MediaRejected unless we can and will transcode this file (pure)."""
    video = result.video
    if video is None:
        if not result.format_name:
            raise MediaRejected("invalid_media", _NOT_READABLE)
        raise MediaRejected("no_video_stream", "The file has no video (audio only or an image).")
    if not set(result.format_name.split(",")) & set(VIDEO_FORMATS):
        raise MediaRejected("invalid_media", _NOT_READABLE)
    if video.codec not in VIDEO_CODECS:
        raise MediaRejected(
            "unsupported_codec",
            f"The video codec {video.codec!r} is not supported; use H.264, HEVC, VP8, VP9 or AV1.",
        )
    if result.audio is not None and result.audio.codec not in AUDIO_CODECS:
        raise MediaRejected(
            "unsupported_codec",
            f"The audio codec {result.audio.codec!r} is not supported; use AAC, MP3 or Opus.",
        )
    if min(video.width, video.height) < MIN_DIMENSION:
        raise MediaRejected("invalid_media", "The video's dimensions could not be read.")
    if not result.duration_ms:
        raise MediaRejected("invalid_media", "The video's duration could not be determined.")
    if result.duration_ms > max_duration_s * 1000:
        raise MediaRejected(
            "too_long",
            f"The video is {_fmt_duration(result.duration_ms)} long; "
            f"the limit is {_fmt_duration(max_duration_s * 1000)}.",
        )
    if max(video.width, video.height, video.display_width, video.display_height) > max_dimension:
        raise MediaRejected(
            "too_large",
            f"The video is {video.display_width}x{video.display_height} pixels; "
            f"each side must be at most {max_dimension}.",
        )
