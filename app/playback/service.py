"""Playback: hand out signed, expiring URLs and serve the playlists they point at.

The player gets one token (see app.playback.signing) in every path under `/v1/play/`,
bound to the clip, its media version and the viewer it was issued to. Each request under it
checks the token against the clip's row (one primary-key query), so deleting or
republishing a clip stops its URLs at once, and asks whether the viewer may still see the
clip (app.playback.states.ViewerAccess: re-read at least every
`playback_access_recheck_s`), so a clip made private, a declined review request or a
deactivated account stops them within that time: 404 like a deleted clip.

Variant playlists list every segment (and the EXT-X-MAP init segment) under the same token,
`/v1/play/{token}/s/{rendition}/{segment}`, on both backends: that route checks the token and
the clip like any other and answers 302 to a URL minted for this request (a presigned S3 GET
or a signed `/v1/media/...` URL, `playback_segment_url_ttl_s`). So a segment URL works for
the token's whole lifetime, however long the player paused, and stops as soon as the clip is
deleted; nothing in a playlist is signed, so serving one costs no signing at all.

The storyboard VTT is rewritten so its sprite URL is absolute and signed, and the MP4 and
poster routes redirect to such a URL: a presigned S3 GET or a signed `/v1/media/...` URL
living at most `playback_s3_url_ttl_s` on both backends. Those URLs cannot be revoked, so
they live briefly; everything long-lived is a token URL that re-checks.
Once a clip is ready, the stored playlists of its media version never change, so their
text is cached in memory; while it is only viewable they still grow and are read each time.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.clips.models import Clip, ClipStatus
from app.clips.service import get_clip
from app.config import Settings
from app.errors import Conflict, Forbidden, NotFound
from app.playback import signing
from app.playback.states import ClipStates
from app.speech import subtitles_media_tag
from app.storage.base import ObjectNotFound, Storage
from app.storage.local import ScopedMediaSigner, sign_media_url
from app.storage.s3 import S3Storage
from app.tenancy import Principal

PLAYABLE = (ClipStatus.viewable, ClipStatus.ready)
_URI_ATTR = re.compile(r'URI="([^"]*)"')
# A relative URI we wrote: path segments of safe characters, never "..".
_RELATIVE = re.compile(r"^(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_-][A-Za-z0-9._/-]*$")
# What /v1/play/{token}/s/{rendition}/{segment} serves: a file directly in a rendition's folder
# (playlists, "*.m3u8", have their own route and are never redirected to).
_RENDITION = re.compile(r"[A-Za-z0-9_-]{1,32}")
_SEGMENT = re.compile(r"(?![A-Za-z0-9._-]*\.m3u8$)[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_SEGMENT_PATH = re.compile(rf"{_RENDITION.pattern}/{_SEGMENT.pattern}")


def is_playable(clip: Clip) -> bool:
    media = clip.media or {}
    return clip.status in PLAYABLE and bool(media.get("variants"))


@dataclass(frozen=True)
class Playback:
    hls_url: str
    mp4_url: str | None
    poster_url: str | None
    storyboard_url: str | None
    captions_url: str | None
    expires_at: datetime


def play_root(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/v1/play/{token}/"


async def playback_for(
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    clip_id: uuid.UUID,
    base_url: str,
    *,
    now: float | None = None,
) -> Playback:
    clip = await get_clip(session, principal, clip_id)
    if not is_playable(clip):
        raise Conflict("The clip has no playable rendition yet.", code="not_viewable")
    return sign_playback(
        settings, clip.id, clip.media or {}, base_url, viewer_id=principal.id, now=now
    )


def sign_playback(
    settings: Settings,
    clip_id: uuid.UUID,
    media: dict[str, Any],
    base_url: str,
    *,
    viewer_id: uuid.UUID,
    now: float | None = None,
) -> Playback:
    """Signed URLs for a playable clip (its id and published media manifest) the caller,
    ``viewer_id``, may see: they work while that user still may. No database access.
    (Unbound tokens, issued before tokens named their viewer, still verify but reach shared
    clips only; see app.playback.signing.)"""
    exp = int(now if now is not None else time.time()) + settings.playback_ttl_s
    token = signing.make_token(settings.secret_key, clip_id, str(media["version"]), exp, viewer_id)
    root = play_root(base_url, token)
    return Playback(
        hls_url=root + "master.m3u8",
        mp4_url=root + "download.mp4" if media.get("download") else None,
        poster_url=root + "poster.jpg" if media.get("poster") else None,
        storyboard_url=(
            root + "storyboard.vtt"
            if media.get("storyboard") and media.get("storyboard_vtt")
            else None
        ),
        captions_url=root + "captions.vtt" if _captions(media) else None,
        expires_at=datetime.fromtimestamp(exp, UTC),
    )


def poster_url(
    settings: Settings,
    clip_id: uuid.UUID,
    media: dict[str, Any] | None,
    base_url: str,
    *,
    viewer_id: uuid.UUID,
    now: float | None = None,
) -> str | None:
    """A short-lived signed poster URL for list items (``poster_url_ttl_s``), or None when the
    clip has no published poster yet. No database access, so a page signs its items in memory.
    Bound to ``viewer_id`` like a playback token."""
    if not media or not media.get("poster") or "version" not in media:
        return None
    exp = int(now if now is not None else time.time()) + settings.poster_url_ttl_s
    token = signing.make_token(settings.secret_key, clip_id, str(media["version"]), exp, viewer_id)
    return play_root(base_url, token) + "poster.jpg"


# --- the token check ----------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """A verified token whose viewer may see the clip: the clip's current media manifest and
    the token's expiry."""

    token: str
    clip_id: uuid.UUID
    media: dict[str, Any]
    exp: int
    now: float
    ready: bool  # False while the renditions are still encoded: the playlists still grow

    @property
    def remaining_s(self) -> int:
        return max(0, self.exp - int(self.now))


def _invalid() -> Forbidden:
    return Forbidden("This playback link is not valid.", code="invalid_signature")


async def authorize(states: ClipStates, settings: Settings, token: str) -> Grant:
    """Check a playback token against the clip's current state (one primary-key query) and
    its viewer's access to the clip (cached; re-read every `playback_access_recheck_s`).

    The reads go through app.playback.states (not the request session): cheap, and never
    SQLite's write lock. Access is asked only once the signature holds, so a forged token
    costs no read and fills no cache.
    """
    try:
        parsed = signing.parse_token(token)
    except signing.MalformedToken:
        raise _invalid() from None
    now = time.time()
    if parsed.exp <= now:
        raise Forbidden("This playback link has expired.", code="expired_signature")
    row = await states.get(parsed.clip_id)
    if row is None or not row.media:
        raise _invalid()
    media: dict[str, Any] = row.media
    if not signing.verify(settings.secret_key, parsed, str(media.get("version", ""))):
        raise _invalid()
    if row.deleted_at is not None or row.status not in PLAYABLE:
        raise NotFound("This clip is no longer available.")
    if not await states.access.allows(
        parsed.viewer_id, parsed.clip_id, recheck_s=settings.playback_access_recheck_s
    ):
        # As for a deleted clip: the holder learns nothing about why.
        raise NotFound("This clip is no longer available.")
    return Grant(
        token=token,
        clip_id=parsed.clip_id,
        media=media,
        exp=parsed.exp,
        now=now,
        ready=row.status == ClipStatus.ready,
    )


# --- signing object URLs --------------------------------------------------------------------


class Signer:
    """Signed, absolute URLs for objects of one grant, on either storage backend."""

    def __init__(self, storage: Storage, settings: Settings, grant: Grant, base_url: str):
        self.storage = storage
        self.settings = settings
        self.grant = grant
        self.base_url = base_url

    @property
    def lifetime_s(self) -> int:
        """How long the URLs this signer makes stay valid (the cacheable lifetime): briefly,
        on both backends, since nothing can revoke them (the token routes re-check access;
        these URLs do not)."""
        return min(self.grant.remaining_s, self.settings.playback_s3_url_ttl_s)

    async def sign(self, keys: list[str]) -> list[str]:
        ttl = max(1, self.lifetime_s)
        if isinstance(self.storage, S3Storage):
            return await self.storage.presign_get_many(keys, ttl_s=ttl)
        # Local: one signature for the clip's media version folder (one HMAC for any number
        # of keys), from the next whole second so the URL lives at least `ttl`; never past
        # the token.
        scope = str(self.grant.media["prefix"])
        exp = min(self.grant.exp, math.ceil(time.time()) + ttl)
        signer = ScopedMediaSigner(self.base_url, self.settings.secret_key, scope, exp)
        return [signer.url(k) for k in keys]


# --- segments: checked at every request, then redirected ----------------------------------


class Redirect(NamedTuple):
    url: str
    max_age_s: int  # how long the 302 itself may be cached


def segment_key(grant: Grant, rendition: str, segment: str) -> str:
    """The storage key behind /v1/play/{token}/s/{rendition}/{segment}: a file directly in the
    folder of one of the published variants (never a playlist). Raises NotFound."""
    if not _RENDITION.fullmatch(rendition) or not _SEGMENT.fullmatch(segment):
        raise NotFound("No such segment.")
    folder = rendition + "/"
    if not any(str(v["playlist"]).startswith(folder) for v in _playlists(grant.media)):
        raise NotFound("No such rendition.")
    return f"{grant.media['prefix']}{folder}{segment}"


async def segment_redirect(
    storage: Storage,
    settings: Settings,
    grant: Grant,
    base_url: str,
    rendition: str,
    segment: str,
) -> Redirect:
    """A URL of one segment minted now, living `playback_segment_url_ttl_s` (never past the
    token): a presigned GET on S3, a signed `/v1/media/...` URL of this API on local storage.

    The segment URLs in a playlist carry no expiry of their own but the token's, so a player
    resumes after any pause; each fetch re-checks the clip (the caller's `authorize`), so they
    stop as soon as it is deleted, and what leaks (the redirect's target) lives briefly.
    """
    key = segment_key(grant, rendition, segment)
    ttl = max(1, min(settings.playback_segment_url_ttl_s, grant.remaining_s))
    if isinstance(storage, S3Storage):
        url = await storage.presign_get_fast(key, ttl_s=ttl)
    else:
        # From the next whole second: the URL lives at least ttl (exp is in whole seconds).
        url = sign_media_url(
            base_url, settings.secret_key, key, ttl_s=ttl, now=math.ceil(time.time())
        )
    # A cached 302 must not point at an expired URL: half its life (0 for a 1 s lifetime).
    return Redirect(url, ttl // 2)


# --- playlist text, cached ----------------------------------------------------------------


T = TypeVar("T")


class _Lru(Generic[T]):
    def __init__(self, max_entries: int) -> None:
        self._items: OrderedDict[str, T] = OrderedDict()
        self._max = max_entries

    def get(self, key: str) -> T | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: T) -> T:
        self._items[key] = value
        if len(self._items) > self._max:
            self._items.popitem(last=False)
        return value


class TextCache:
    """Small LRU of stored playlist/VTT text of ready clips (whose objects never change)."""

    def __init__(self, max_entries: int = 512) -> None:
        self._items: OrderedDict[tuple[str, ...], str] = OrderedDict()
        self._max = max_entries
        self.templates = _Lru[Template](max_entries)

    async def read(self, storage: Storage, key: str, *, keep: bool = True) -> str:
        """The object's text; `keep=False` for an object that may still change."""
        cache_key = (storage.kind, key)
        text = self._items.get(cache_key) if keep else None
        if text is not None:
            self._items.move_to_end(cache_key)
            return text
        try:
            chunks = [c async for c in await storage.open_range(key)]
        except ObjectNotFound:
            raise NotFound() from None
        text = b"".join(chunks).decode()
        if not keep:
            return text
        self._items[cache_key] = text
        if len(self._items) > self._max:
            self._items.popitem(last=False)
        return text


def _check_relative(uri: str) -> str:
    if not _RELATIVE.fullmatch(uri):
        raise NotFound("The playlist refers to an unexpected location.")
    return uri


def _join(directory: str, uri: str) -> str:
    return f"{directory}{_check_relative(uri)}"


SUBTITLES_GROUP = "subs"


def _captions(media: dict[str, Any]) -> dict[str, Any] | None:
    captions = media.get("captions")
    return captions if isinstance(captions, dict) and captions.get("playlist") else None


async def master_playlist(cache: TextCache, storage: Storage, grant: Grant, root: str) -> str:
    """The stored master with absolute URLs under the token; once the clip has captions
    (app.speech_analysis.captions), with their SUBTITLES rendition, named by every variant."""
    media = grant.media
    text = await cache.read(storage, media["prefix"] + media["master"], keep=grant.ready)
    known = {v["playlist"] for v in media["variants"]}
    captions = _captions(media)
    out: list[str] = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            if _check_relative(line) not in known:
                continue  # only variants of the published manifest
            line = root + line
        elif _URI_ATTR.search(line):
            line = _URI_ATTR.sub(lambda m: f'URI="{root}{_check_relative(m.group(1))}"', line)
        elif captions is not None and line.startswith("#EXT-X-STREAM-INF:"):
            if not any(o.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES") for o in out):
                out.append(
                    subtitles_media_tag(
                        root + _check_relative(str(captions["playlist"])),
                        language=str(captions.get("language") or "und"),
                        name=str(captions.get("name") or "Captions"),
                        group_id=SUBTITLES_GROUP,
                    )
                )
            line += f',SUBTITLES="{SUBTITLES_GROUP}"'
        out.append(line)
    return "\n".join(out) + "\n"


def _playlists(media: dict[str, Any]) -> list[dict[str, Any]]:
    """The media playlists a token serves: every variant's, and the captions' once there."""
    captions = _captions(media)
    extra = [{"playlist": str(captions["playlist"])}] if captions is not None else []
    return [*media["variants"], *extra]


def find_variant(grant: Grant, path: str) -> dict[str, Any]:
    for variant in _playlists(grant.media):
        if variant["playlist"] == path:
            return dict(variant)
    raise NotFound("No such rendition.")


@dataclass(frozen=True)
class Template:
    """A playlist split around the keys it refers to: the served text is
    ``literals[0] + url(keys[0]) + literals[1] + ... + literals[-1]``."""

    literals: list[str]
    keys: list[str]

    def render_under(self, root: str) -> str:
        """Every key as ``root + key`` (keys relative to the clip's media folder)."""
        parts = [self.literals[0]]
        for key, literal in zip(self.keys, self.literals[1:], strict=True):
            parts += (root, key, literal)
        return "".join(parts)


def media_playlist_template(text: str, directory: str) -> Template:
    """Every URI of a media playlist (segments, EXT-X-MAP) becomes a key under directory."""
    literals: list[str] = []
    keys: list[str] = []
    pending: list[str] = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            literals.append("".join(pending))
            keys.append(_join(directory, line))
            pending = ["\n"]
            continue
        last = 0
        for m in _URI_ATTR.finditer(line):
            pending.append(line[last : m.start(1)])
            literals.append("".join(pending))
            keys.append(_join(directory, m.group(1)))
            pending = []
            last = m.end(1)
        pending.append(line[last:] + "\n")
    literals.append("".join(pending))
    return Template(literals=literals, keys=keys)


# Segment URLs live one level below the playlists' (`{root}s/v0/seg_00001.m4s`), so the
# segment route's path template differs from the playlist route's in shape, not only in a
# parameter's name (OpenAPI forbids templates that differ only in names).
SEGMENTS_DIR = "s/"


def segment_template(text: str, playlist: str) -> Template:
    """The template of a variant playlist with keys relative to the media folder
    (``v0/seg_00001.m4s``), each one a path the segment route serves."""
    directory = playlist.rsplit("/", 1)[0] + "/" if "/" in playlist else ""
    template = media_playlist_template(text, directory)
    for path in template.keys:
        if not _SEGMENT_PATH.fullmatch(path):
            raise NotFound("The playlist refers to an unexpected location.")
    return template


async def variant_playlist(
    cache: TextCache, storage: Storage, grant: Grant, variant: dict[str, Any], root: str
) -> str:
    """The variant playlist with every URI an absolute segment URL under the token (root):
    `{root}s/{rendition}/{segment}`, redirected at each fetch (see segment_redirect)."""
    media = grant.media
    playlist: str = variant["playlist"]
    key = media["prefix"] + playlist
    template = cache.templates.get(key) if grant.ready else None
    if template is None:
        text = await cache.read(storage, key, keep=grant.ready)
        template = segment_template(text, playlist)
        if grant.ready:
            cache.templates.put(key, template)
    return template.render_under(root + SEGMENTS_DIR)


async def storyboard_vtt(cache: TextCache, signer: Signer, grant: Grant) -> str:
    media = grant.media
    if not media.get("storyboard_vtt") or not media.get("storyboard"):
        raise NotFound("This clip has no storyboard yet.")
    text = await cache.read(
        signer.storage, media["prefix"] + media["storyboard_vtt"], keep=grant.ready
    )
    sprite = str(media["storyboard"])
    (url,) = await signer.sign([media["prefix"] + _check_relative(sprite)])
    out = []
    for line in text.splitlines():
        if "#xywh=" in line:
            name, _, fragment = line.partition("#")
            if name.strip() == sprite:
                line = f"{url}#{fragment}"
        out.append(line)
    return "\n".join(out) + "\n"


async def object_url(signer: Signer, grant: Grant, field: str) -> str:
    """A signed URL of the download MP4, the poster or the captions file (the play routes
    redirect to it)."""
    if field == "captions":
        captions = _captions(grant.media)
        name = captions.get("vtt") if captions is not None else None
    else:
        name = grant.media.get(field)
    if not name:
        raise NotFound("This clip has no such file yet.")
    (url,) = await signer.sign([grant.media["prefix"] + _check_relative(str(name))])
    return url
