"""Media pipeline: probe/validate uploads, plan the ladder, run ffmpeg safely.

The worker's transcode handler needs only `transcode()` and the error types; the pieces are
public for tests and benchmarks.
"""

from app.media.errors import FfmpegFailed, FfmpegTimeout, MediaError, MediaRejected
from app.media.pipeline import OutputFile, RenditionOutput, TranscodeResult, transcode
from app.media.plan import Rendition, TranscodePlan, plan_transcode, render_master
from app.media.probe import ProbeResult, probe, validate
from app.media.runner import Limits, run_ffmpeg, timeout_for

__all__ = [
    "FfmpegFailed",
    "FfmpegTimeout",
    "Limits",
    "MediaError",
    "MediaRejected",
    "OutputFile",
    "ProbeResult",
    "Rendition",
    "RenditionOutput",
    "TranscodePlan",
    "TranscodeResult",
    "plan_transcode",
    "probe",
    "render_master",
    "run_ffmpeg",
    "timeout_for",
    "transcode",
    "validate",
]
