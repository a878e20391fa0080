"""Media test fixtures: tiny clips generated with ffmpeg's lavfi sources, once per xdist worker.

Tests here share nothing but read-only clips in a per-worker temp folder, so they run in
parallel under pytest-xdist. Modules that run ffmpeg are marked `ffmpeg` (`-m "not ffmpeg"`
leaves the pure planning tests).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ffmpeg: runs the ffmpeg/ffprobe binaries")


def ffmpeg(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        cwd=cwd,
    )


def ffprobe(path: Path, *args: str) -> dict[str, Any]:
    """Trusted-side ffprobe for assertions (our own outputs, so no whitelists needed)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-of", "json", *args, str(path)],
        check=True,
        capture_output=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def video_packets(path: Path) -> list[tuple[float, bool]]:
    """(pts seconds, is keyframe) of the first video stream's packets."""
    data = ffprobe(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags")
    return [(float(p["pts_time"]), "K" in p["flags"]) for p in data["packets"]]


def _lavfi(size: str, seconds: float, rate: int = 30) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}:d={seconds}"]


def _sine(seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=44100"]


_FAST = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def _gab2_avi() -> bytes:
    """An AVI whose subtitle stream holds a GAB2 chunk with an HLS playlist pointing at
    /etc/passwd: the shape of the 2017 ffmpeg local-file-disclosure exploit."""

    def chunk(fourcc: bytes, data: bytes) -> bytes:
        pad = b"\0" if len(data) % 2 else b""
        return fourcc + struct.pack("<I", len(data)) + data + pad

    def riff_list(kind: bytes, data: bytes) -> bytes:
        return chunk(b"LIST", kind + data)

    playlist = (
        b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n"
        b"file:///etc/passwd\n#EXTINF:10.0,\n/etc/passwd\n#EXT-X-ENDLIST\n"
    )
    avih = struct.pack("<14I", 40000, 0, 0, 0x10, 1, 0, 1, 0, 224, 160, 0, 0, 0, 0)
    strh = b"txts" + struct.pack(
        "<4sIHHIIIIIIII4h", b"\0" * 4, 0, 0, 0, 0, 1, 25, 0, 1, 0, 0, 0, 0, 0, 0, 0
    )
    strf = struct.pack("<IiiHH4sIiiII", 40, 224, 160, 1, 24, b"XVID", 0, 0, 0, 0, 0)
    strl = riff_list(b"strl", chunk(b"strh", strh) + chunk(b"strf", strf))
    hdrl = riff_list(b"hdrl", chunk(b"avih", avih) + strl)
    gab2 = b"GAB2\x00\x02\x00" + b"\x00" * 10 + playlist
    movi = riff_list(b"movi", chunk(b"00tx", gab2) + chunk(b"00dc", b"\0" * 200) * 20)
    body = b"AVI " + hdrl + movi
    return b"RIFF" + struct.pack("<I", len(body)) + body


class Clips:
    """Named test inputs, created on first use and cached for the worker's session."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _get(self, name: str, make: Callable[[Path], object]) -> Path:
        path = self.root / name
        if not path.exists():
            tmp = self.root / f"tmp-{name}"
            make(tmp)
            tmp.rename(path)
        return path

    def landscape(self) -> Path:
        """1280x720, 3 s, with audio and privacy-sensitive metadata."""
        return self._get(
            "landscape.mp4",
            lambda p: ffmpeg(
                *_lavfi("1280x720", 3), *_sine(3), *_FAST,
                "-c:a", "aac", "-shortest",
                "-metadata", "title=secret-title",
                "-metadata", "location=+48.8584+002.2945/",
                "-f", "mp4", str(p),
            ),
        )  # fmt: skip

    def portrait_rotated(self) -> Path:
        """A phone-style clip: coded 640x360 with a 90° display matrix → shown 360x640...
        made at 1280x720 coded so the ladder has two portrait rungs."""

        def make(p: Path) -> None:
            plain = self.root / "portrait-plain.mp4"
            ffmpeg(
                *_lavfi("1280x720", 2), *_sine(2), *_FAST, "-c:a", "aac", "-shortest", str(plain)
            )
            # ffmpeg 5.1 writes the display matrix from the legacy tag on stream copy.
            ffmpeg(
                "-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", "-f", "mp4", str(p)
            )

        return self._get("portrait.mp4", make)

    def no_audio(self) -> Path:
        return self._get(
            "noaudio.mp4", lambda p: ffmpeg(*_lavfi("640x360", 3), *_FAST, "-f", "mp4", str(p))
        )

    def vfr(self) -> Path:
        """60 fps nominal with two frames in three dropped irregularly: variable frame rate."""
        return self._get(
            "vfr.mp4",
            lambda p: ffmpeg(
                *_lavfi("320x240", 3, rate=60), *_sine(3),
                "-vf", "select='not(mod(n,3))+eq(mod(n,7),1)'", "-fps_mode", "vfr",
                *_FAST, "-c:a", "aac", "-shortest", "-f", "mp4", str(p),
            ),
        )  # fmt: skip

    def small(self, seconds: float = 2) -> Path:
        return self._get(
            f"small-{seconds}.mp4",
            lambda p: ffmpeg(
                *_lavfi("320x180", seconds), *_sine(seconds), *_FAST,
                "-c:a", "aac", "-shortest", "-f", "mp4", str(p),
            ),
        )  # fmt: skip

    def faststart(self) -> Path:
        return self._get(
            "faststart.mp4",
            lambda p: ffmpeg(
                *_lavfi("640x360", 4), *_sine(4), *_FAST, "-c:a", "aac", "-shortest",
                "-movflags", "+faststart", "-f", "mp4", str(p),
            ),
        )  # fmt: skip

    def webm_without_duration(self) -> Path:
        """Like a browser's MediaRecorder output: VP8/Opus WebM whose header has no duration
        (written to a pipe, so the muxer never seeks back to fill it in)."""

        def make(p: Path) -> None:
            cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", *_lavfi("320x240", 3), *_sine(3)]
            cmd += ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"]
            cmd += ["-c:a", "libopus", "-shortest", "-f", "webm", "pipe:1"]
            p.write_bytes(subprocess.run(cmd, check=True, capture_output=True).stdout)

        return self._get("recorder.webm", make)

    # --- bad inputs -------------------------------------------------------------------

    def empty(self) -> Path:
        return self._get("empty.mp4", lambda p: p.write_bytes(b""))

    def text(self) -> Path:
        return self._get(
            "notes.mp4", lambda p: p.write_text("Call notes: ask about budget.\n" * 50)
        )

    def png(self) -> Path:
        return self._get(
            "image.png",
            lambda p: ffmpeg(*_lavfi("320x180", 1), "-frames:v", "1", "-f", "image2", str(p)),
        )

    def wav(self) -> Path:
        return self._get("audio.wav", lambda p: ffmpeg(*_sine(2), "-f", "wav", str(p)))

    def m4a_with_cover(self) -> Path:
        """Audio with cover art: its only 'video' stream is an attached picture."""

        def make(p: Path) -> None:
            cover = self.png()
            ffmpeg(
                *_sine(2), "-i", str(cover), "-map", "0:a", "-map", "1:v",
                "-c:a", "aac", "-c:v", "mjpeg", "-disposition:v:0", "attached_pic",
                "-f", "mp4", str(p),
            )  # fmt: skip

        return self._get("cover.m4a", make)

    def ffv1(self) -> Path:
        return self._get(
            "ffv1.mkv",
            lambda p: ffmpeg(*_lavfi("320x180", 1), "-c:v", "ffv1", "-f", "matroska", str(p)),
        )

    def truncated(self) -> Path:
        """Index (moov) at the end, cut in half: no index at all."""

        def make(p: Path) -> None:
            data = self.landscape().read_bytes()
            p.write_bytes(data[: len(data) // 2])

        return self._get("truncated.mp4", make)

    def truncated_faststart(self) -> Path:
        """Index in front, media cut in half: probes fine, decodes half."""

        def make(p: Path) -> None:
            data = self.faststart().read_bytes()
            p.write_bytes(data[: len(data) // 2])

        return self._get("truncated-faststart.mp4", make)

    def hls_playlist(self) -> Path:
        return self._get(
            "playlist.m3u8",
            lambda p: p.write_text(
                "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n"
                "#EXTINF:10,\n/etc/passwd\n#EXT-X-ENDLIST\n"
            ),
        )

    def hls_playlist_as_mp4(self) -> Path:
        return self._get("playlist.mp4", lambda p: p.write_bytes(self.hls_playlist().read_bytes()))

    def concat_list(self) -> Path:
        return self._get(
            "list.ffconcat",
            lambda p: p.write_text(
                "ffconcat version 1.0\nfile '/etc/passwd'\nfile 'file:/etc/passwd'\n"
            ),
        )

    def gab2_avi(self) -> Path:
        return self._get("gab2.avi", lambda p: p.write_bytes(_gab2_avi()))

    def gab2_avi_as_mp4(self) -> Path:
        return self._get("gab2.mp4", lambda p: p.write_bytes(_gab2_avi()))


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg/ffprobe are required (make test installs Debian's ffmpeg)")
    return Clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def passwd_needles() -> list[str]:
    """Distinctive lines of /etc/passwd that must never show up in outputs or errors."""
    lines = [ln for ln in Path("/etc/passwd").read_text().splitlines() if ln.count(":") >= 6]
    return lines[:5] or ["root:x:0:0"]
