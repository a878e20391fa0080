"""Captions from a clip's transcript, published with its renditions: the files the players
read, written next to the renditions of the media version the transcript was made from.

- ``captions/NNNNN.vtt``: WebVTT chunks on the video's segment grid, and ``captions/subs.m3u8``
  listing them: the HLS ``SUBTITLES`` rendition the master names (app.playback), which
  hls.js, AVPlayer and ExoPlayer show;
- ``captions/captions.vtt``: the whole track in one file, for the MP4 download and a
  ``<track>`` element.

The files are stored first and the clip's media manifest names them last (the transcode's
rule: a player never meets a reference to a missing file). They live under the version's
prefix, so republishing or deleting the clip removes them with the renditions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from app.media.plan import SEGMENT_S
from app.speech import Transcript, hls_subtitles_playlist, hls_vtt_chunks, to_vtt
from app.storage.base import Storage

CAPTIONS_DIR = "captions/"
PLAYLIST = CAPTIONS_DIR + "subs.m3u8"
WHOLE_VTT = CAPTIONS_DIR + "captions.vtt"
_VTT = "text/vtt"
_M3U8 = "application/vnd.apple.mpegurl"
_LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish"}


def track_name(language: str, confidence_class: str) -> str:
    """What a player's captions menu shows: the language, marked as machine-made (and as
    rough when the engine is of low confidence, so no one takes it for a verbatim record)."""
    base = _LANGUAGE_NAMES.get(language.split("-")[0].lower(), language)
    return f"{base} (automatic{', low confidence' if confidence_class == 'low' else ''})"


def caption_files(transcript: Transcript, duration_ms: int) -> list[tuple[str, str, str]]:
    """(name under the media prefix, text, content type) of every file, the playlist last."""
    chunks = hls_vtt_chunks(transcript, duration_ms=duration_ms, segment_ms=SEGMENT_S * 1000)
    files = [(f"{CAPTIONS_DIR}{c.index:05d}.vtt", c.text, _VTT) for c in chunks]
    files.append((WHOLE_VTT, to_vtt(transcript), _VTT))
    # Chunk URIs relative to the playlist, as the renditions' playlists are.
    files.append((PLAYLIST, hls_subtitles_playlist(chunks), _M3U8))
    return files


def manifest_entry(transcript: Transcript) -> dict[str, Any]:
    """The ``captions`` entry of ``clips.media`` (what app.playback serves from)."""
    return {
        "playlist": PLAYLIST,
        "vtt": WHOLE_VTT,
        "language": transcript.language,
        "name": track_name(transcript.language, transcript.confidence_class),
        "engine": transcript.engine,
        "confidence_class": transcript.confidence_class,
    }


async def _one(text: str) -> AsyncIterator[bytes]:
    yield text.encode()


async def store_caption_files(
    storage: Storage, prefix: str, transcript: Transcript, duration_ms: int
) -> None:
    for name, text, content_type in caption_files(transcript, duration_ms):
        await storage.put_stream(prefix + name, _one(text), content_type=content_type)


async def discard_caption_files(storage: Storage, prefix: str) -> None:
    await storage.delete_prefix(prefix + CAPTIONS_DIR)
