from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PlaybackOut(BaseModel):
    hls_url: str = Field(description="HLS master playlist (signed; no Authorization needed).")
    mp4_url: str | None = Field(description="Progressive MP4 for download; null until it exists.")
    poster_url: str | None = Field(description="Poster JPEG; null until it exists.")
    storyboard_url: str | None = Field(
        description="WebVTT thumbnails track (sprite URLs signed); null until it exists."
    )
    captions_url: str | None = Field(
        default=None,
        description="The whole captions track as one WebVTT file (for the MP4 or a <track> "
        "element); null until the clip's speech analysis made a transcript. The HLS master "
        "then also carries it as a SUBTITLES rendition.",
    )
    expires_at: datetime = Field(
        description="When every URL above stops working. They are bound to the caller and "
        "stop sooner (404, within PEERPITCH_PLAYBACK_ACCESS_RECHECK_S) once the caller may no "
        "longer see the clip."
    )
