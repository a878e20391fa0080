"""WebVTT captions from a transcript: one file, or chunks for an HLS SUBTITLES rendition.

One cue per transcript segment (the engines make them caption-sized). For HLS, the track is
cut on the video's segment grid: every chunk covers one segment's time span, starts with
`X-TIMESTAMP-MAP` (cue times are on the clip's timeline, LOCAL 0 = the media timestamp given
as `mpegts`, 90 kHz), and holds every cue overlapping that span; a cue crossing a boundary is
repeated in both chunks, as players expect (they drop the duplicate).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.speech.models import Segment, Transcript

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def timestamp(ms: int) -> str:
    """WebVTT timestamp, always with hours: 01:02:03.004."""
    ms = max(0, ms)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def escape(text: str) -> str:
    """Cue text: markup characters escaped (no tags from a transcript: "a <b>" stays text, and
    "-->" can never end up in a cue) and line breaks folded, since a blank line ends a cue."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _CONTROL.sub(" ", text).strip()


def _cue(segment: Segment) -> str | None:
    text = escape(segment.text)
    if not text:
        return None
    end = max(segment.end_ms, segment.start_ms + 1)  # a cue must end after it starts
    return f"{timestamp(segment.start_ms)} --> {timestamp(end)}\n{text}\n"


def _cues(segments: Sequence[Segment]) -> list[str]:
    return [c for c in map(_cue, segments) if c is not None]


def _file(header: str, segments: Sequence[Segment]) -> str:
    # Every block ends with a blank line, so files concatenated by a reader (ffmpeg's HLS
    # demuxer reads a subtitles playlist that way) never run into each other.
    return "".join(block + "\n" for block in [header, *_cues(segments)])


def to_vtt(transcript: Transcript) -> str:
    """The whole transcript as one WebVTT file."""
    return _file("WEBVTT\n", transcript.segments)


@dataclass(frozen=True)
class VttChunk:
    index: int
    start_ms: int
    duration_ms: int
    text: str  # a complete WebVTT file


def hls_vtt_chunks(
    transcript: Transcript | None,
    *,
    duration_ms: int,
    segment_ms: int = 6000,
    mpegts: int = 0,
) -> list[VttChunk]:
    """The WebVTT chunks of an HLS subtitles playlist spanning `duration_ms` (the clip's),
    aligned to the video's `segment_ms` grid (app.media.plan.SEGMENT_S). Chunks without
    speech are still there (header only), so the track covers the whole timeline.

    `mpegts` is the media timestamp (90 kHz) where the clip's time 0 lies: 0 for the
    fragmented-MP4 renditions app.media writes.
    """
    if segment_ms <= 0:
        raise ValueError("segment_ms must be positive")
    header = f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:{timestamp(0)}\n"
    segments = transcript.segments if transcript is not None else ()
    count = max(1, math.ceil(duration_ms / segment_ms))
    chunks: list[VttChunk] = []
    for i in range(count):
        start = i * segment_ms
        end = min(duration_ms, start + segment_ms) if i == count - 1 else start + segment_ms
        # Overlapping [start, end); the last chunk also takes anything running past the end.
        inside = [s for s in segments if s.end_ms > start and (s.start_ms < end or i == count - 1)]
        chunks.append(
            VttChunk(
                index=i,
                start_ms=start,
                duration_ms=max(0, end - start),
                text=_file(header, inside),
            )
        )
    return chunks


def chunk_name(chunk: VttChunk) -> str:
    return f"{chunk.index:05d}.vtt"


def hls_subtitles_playlist(
    chunks: Sequence[VttChunk], *, uri: Callable[[VttChunk], str] = chunk_name
) -> str:
    """The VOD media playlist of the chunks (`uri` names each chunk, relative or signed)."""
    target = max((round(c.duration_ms / 1000) for c in chunks), default=1)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(1, target)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for c in chunks:
        lines += [f"#EXTINF:{c.duration_ms / 1000:.3f},", uri(c)]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def subtitles_media_tag(
    uri: str,
    *,
    language: str,
    name: str,
    group_id: str = "subs",
    default: bool = False,
) -> str:
    """The master playlist's `EXT-X-MEDIA` line of the captions rendition; each
    `EXT-X-STREAM-INF` then names the group with `SUBTITLES="subs"`."""

    def quoted(value: str) -> str:
        return '"' + value.replace('"', "'").replace("\n", " ") + '"'

    return (
        f"#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID={quoted(group_id)},NAME={quoted(name)},"
        f"LANGUAGE={quoted(language)},DEFAULT={'YES' if default else 'NO'},"
        f"AUTOSELECT=YES,FORCED=NO,URI={quoted(uri)}"
    )
