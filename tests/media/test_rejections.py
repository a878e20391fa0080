"""Bad and hostile inputs: each fails with its own code, reads no local file, leaves nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from app.media import FfmpegFailed, MediaRejected, transcode
from app.media.probe import VIDEO_FORMATS, input_args, probe
from app.media.runner import run_ffmpeg
from tests.media.conftest import Clips, ffmpeg

pytestmark = pytest.mark.ffmpeg

HOSTILE = [
    "hls_playlist",
    "hls_playlist_as_mp4",
    "concat_list",
    "gab2_avi",
    "gab2_avi_as_mp4",
]


def _texts_of(exc: BaseException) -> str:
    parts = [str(exc), repr(exc)]
    for attr in ("message", "stderr_tail"):
        parts.append(str(getattr(exc, attr, "")))
    if exc.__cause__ is not None:
        parts.append(_texts_of(exc.__cause__))
    return "\n".join(parts)


def _all_output_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("clip", "code"),
    [
        ("empty", "invalid_media"),
        ("text", "invalid_media"),
        ("png", "invalid_media"),
        ("wav", "no_video_stream"),
        ("m4a_with_cover", "no_video_stream"),
        ("truncated", "invalid_media"),
        ("ffv1", "unsupported_codec"),
        *[(name, "invalid_media") for name in HOSTILE],
    ],
)
async def test_bad_input_is_rejected_with_its_code(
    clips: Clips, tmp_path: Path, clip: str, code: str, passwd_needles: list[str]
) -> None:
    source = getattr(clips, clip)()
    out = tmp_path / "out"
    with pytest.raises(MediaRejected) as e:
        await transcode(source, out, max_duration_s=1800, max_dimension=4096)
    assert e.value.code == code
    assert e.value.message
    assert list(out.iterdir()) == []  # nothing was produced, nothing to publish
    text = _texts_of(e.value)
    for needle in passwd_needles:
        assert needle not in text


@pytest.mark.parametrize(
    ("max_duration_s", "max_dimension", "code"),
    [(2, 4096, "too_long"), (1800, 1000, "too_large")],
)
async def test_limits(
    clips: Clips, tmp_path: Path, max_duration_s: int, max_dimension: int, code: str
) -> None:
    with pytest.raises(MediaRejected) as e:  # the clip: 3 s, 1280x720
        await transcode(
            clips.landscape(),
            tmp_path / "out",
            max_duration_s=max_duration_s,
            max_dimension=max_dimension,
        )
    assert e.value.code == code


@pytest.mark.parametrize("clip", HOSTILE)
async def test_ffmpeg_itself_refuses_playlists_with_our_input_flags(
    clips: Clips, tmp_path: Path, clip: str, passwd_needles: list[str]
) -> None:
    """Even if probing were skipped, the encode's own input flags refuse these demuxers."""
    args = [*input_args(getattr(clips, clip)(), VIDEO_FORMATS), "-map", "0", "-c", "copy"]
    args += ["-f", "matroska", "-protocol_whitelist", "file", "out.mkv"]
    with pytest.raises(FfmpegFailed) as e:
        await run_ffmpeg(args, timeout_s=30, cwd=tmp_path)
    assert "not on whitelist" in e.value.stderr_tail or "Invalid data" in e.value.stderr_tail
    leaked = _texts_of(e.value).encode() + _all_output_bytes(tmp_path)
    for needle in passwd_needles:
        assert needle.encode() not in leaked


async def test_format_whitelist_is_what_stops_a_playlist_reading_local_files(
    clips: Clips, tmp_path: Path
) -> None:
    """Control: `-protocol_whitelist file` alone lets an HLS playlist pull in a local file;
    the demuxer whitelist is what refuses it."""
    segment = tmp_path / "secret.ts"
    ffmpeg("-i", str(clips.small()), "-c", "copy", "-f", "mpegts", str(segment))
    playlist = tmp_path / "upload.m3u8"
    playlist.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n{segment}\n#EXT-X-ENDLIST\n"
    )
    cmd = ["ffprobe", "-v", "error", "-protocol_whitelist", "file", "-of", "json"]
    unsafe = subprocess.run(
        [*cmd, "-show_streams", str(playlist)],
        capture_output=True,
        check=True,
    )
    assert json.loads(unsafe.stdout)["streams"], "ffprobe followed the playlist"
    with pytest.raises(MediaRejected) as e:
        await probe(playlist)
    assert e.value.code == "invalid_media"


async def test_worker_is_fine_after_hostile_inputs(clips: Clips, tmp_path: Path) -> None:
    for i, name in enumerate(HOSTILE):
        with pytest.raises(MediaRejected):
            await transcode(
                getattr(clips, name)(), tmp_path / f"bad{i}", max_duration_s=60, max_dimension=4096
            )
    result = await transcode(
        clips.small(), tmp_path / "good", max_duration_s=60, max_dimension=4096, preset="ultrafast"
    )
    assert result.files[-1].path == "master.m3u8"
