"""A clip as responses show it: ClipOut with its signed poster URL, signed in memory (no
query), so a page of clips costs the same statements whatever its size."""

from __future__ import annotations

import uuid

from app.clips.models import Clip
from app.clips.schemas import ClipOut, OpenUpload
from app.config import Settings
from app.playback.service import poster_url
from app.uploads.models import Upload
from app.views.schemas import ViewStats


def clip_out(
    clip: Clip,
    settings: Settings,
    base_url: str,
    stats: ViewStats | None = None,
    *,
    viewer_id: uuid.UUID,
    upload: Upload | None = None,
) -> ClipOut:
    """``clip.owner`` must be loaded; ``viewer_id`` is the caller, whom the poster URL is
    bound to; ``upload`` is the open upload shown to the owner."""
    return ClipOut.of(
        clip,
        stats,
        poster_url=poster_url(settings, clip.id, clip.media, base_url, viewer_id=viewer_id),
        upload=OpenUpload.of(upload) if upload is not None else None,
    )
