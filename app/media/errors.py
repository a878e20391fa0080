"""Media pipeline errors: permanent rejections versus (retryable) ffmpeg failures."""

from __future__ import annotations

from typing import Literal

RejectCode = Literal[
    "invalid_media", "no_video_stream", "too_long", "too_large", "unsupported_codec"
]


class MediaError(Exception):
    """Base of everything app.media raises on purpose."""


class MediaRejected(MediaError):
    """The upload itself is unacceptable: retrying cannot help (permanent failure).

    `message` is safe to show to the uploader: it never contains ffmpeg output.
    """

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: RejectCode = code
        self.message = message


class FfmpegFailed(MediaError):
    """ffmpeg/ffprobe exited non-zero (or was killed by a resource limit).

    Treated as transient by default: the job queue retries, then `processing_failed`.
    """

    def __init__(self, returncode: int, stderr_tail: str, *, program: str = "ffmpeg") -> None:
        super().__init__(f"{program} exited with {returncode}: {stderr_tail[-500:]}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.program = program


class FfmpegTimeout(FfmpegFailed):
    """The wall-clock timeout fired; the process group was killed."""

    def __init__(self, timeout_s: float, stderr_tail: str, *, program: str = "ffmpeg") -> None:
        super().__init__(-9, stderr_tail, program=program)
        self.timeout_s = timeout_s
        self.args = (f"{program} timed out after {timeout_s:.0f}s: {stderr_tail[-500:]}",)
