"""`analyze()`: one recording in, one `SpeechResult` out. What the speech job calls.

    probe ─► no audio?  unavailable: no_audio_stream
      │
      ├──► ASR child starts (Python, VAD and engine load) ─┐
      └──► ffmpeg: 16 kHz mono + ebur128 loudness ─────────┤ silent? unavailable: silent
                                                           ▼
                       child: VAD over all ─► engine over the speech regions only
                                                           ▼
      delivery metrics, transcript metrics, talk track, flags ─► ready (or no_speech)

Nothing here touches the database or storage: the caller downloads the source into its
scratch folder and stores the result. Problems of the recording or of a run become a
`failed` result (`is_retryable()` tells the job whether to try again); only cancellation
and programming errors raise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from app.media.errors import FfmpegFailed, FfmpegTimeout, MediaRejected
from app.media.probe import probe
from app.speech.audio import extract
from app.speech.child import ChildJob, ChildResult
from app.speech.delivery import delivery_metrics, flags
from app.speech.models import (
    FailedReason,
    LoudnessMetrics,
    Metrics,
    Processing,
    SpeechResult,
    TalkTrack,
    UnavailableReason,
)
from app.speech.process import AsrProcess, AsrProcessError
from app.speech.settings import SpeechSettings
from app.speech.text import match_talk_track, transcript_metrics
from app.speech.vad import Region

log = logging.getLogger("peerpitch.speech")

ProgressCallback = Callable[[float], Awaitable[None]]
# Share of the reported progress for ffmpeg's pass (the rest is the child's).
EXTRACT_SHARE = 0.05


async def analyze(
    source_path: Path,
    *,
    settings: SpeechSettings,
    talk_track: TalkTrack | None = None,
    scratch: Path,
    on_progress: ProgressCallback | None = None,
) -> SpeechResult:
    """Analyse the speech of `source_path` (any container app.media probes), using `scratch`
    (an existing folder the caller removes) for the extracted audio.

    `on_progress(fraction)` gets a monotonic 0..1 fraction (the job's heartbeat)."""
    return await _Run(settings).analyze(source_path, talk_track, scratch, on_progress)


class _Run:
    def __init__(self, settings: SpeechSettings) -> None:
        self.settings = settings
        self.started = time.monotonic()
        self.duration_ms: int | None = None

    def unavailable(self, reason: UnavailableReason, message: str) -> SpeechResult:
        return SpeechResult(
            status="unavailable",
            reason=reason,
            message=message,
            engine=self.settings.engine,
            language=self.settings.language,
            duration_ms=self.duration_ms,
        )

    def failed(self, reason: FailedReason, message: str) -> SpeechResult:
        log.warning("speech analysis failed: %s: %s", reason, message)
        return SpeechResult(
            status="failed",
            reason=reason,
            message=message,
            engine=self.settings.engine,
            language=self.settings.language,
            duration_ms=self.duration_ms,
        )

    def ffmpeg_failed(self, exc: FfmpegFailed) -> SpeechResult:
        if isinstance(exc, FfmpegTimeout):
            return self.failed("timeout", f"{exc.program} took over {exc.timeout_s:.0f} s")
        if exc.returncode > 0:  # ffmpeg refused the input; < 0: killed by a signal
            return self.failed("invalid_media", "The audio could not be decoded.")
        return self.failed("ffmpeg_failed", f"{exc.program} was killed ({exc.returncode})")

    async def analyze(
        self,
        source: Path,
        talk_track: TalkTrack | None,
        scratch: Path,
        on_progress: ProgressCallback | None,
    ) -> SpeechResult:
        s = self.settings
        try:
            probed = await probe(source)
        except MediaRejected as exc:
            return self.failed("invalid_media", exc.message)
        except FfmpegFailed as exc:
            return self.ffmpeg_failed(exc)
        self.duration_ms = probed.duration_ms
        if probed.audio is None:
            return self.unavailable("no_audio_stream", "The recording has no audio.")

        work = scratch / "speech"
        await anyio.to_thread.run_sync(lambda: work.mkdir(parents=True, exist_ok=True))
        # Started first: Python, the VAD and the engine load while ffmpeg runs.
        child = await AsrProcess.start(s)
        try:
            try:
                audio, loudness = await extract(
                    source, audio_index=probed.audio.index, work=work, duration_ms=self.duration_ms
                )
            except FfmpegFailed as exc:
                return self.ffmpeg_failed(exc)
            # The clip's length (an audio track may end before the picture does).
            self.duration_ms = max(audio.duration_ms, probed.duration_ms or 0)
            if on_progress is not None:
                await on_progress(EXTRACT_SHARE)
            if (
                not audio.duration_ms
                or loudness is None
                or loudness.integrated_lufs <= s.silent_lufs
            ):
                return self.unavailable("silent", "The recording is silent.")

            async def child_progress(fraction: float) -> None:
                if on_progress is not None:
                    await on_progress(EXTRACT_SHARE + (1 - EXTRACT_SHARE) * fraction)

            job = ChildJob(
                wav_path=audio.wav_path, f32_path=audio.f32_path, duration_ms=audio.duration_ms
            )
            timeout_s = s.asr_timeout_base_s + s.asr_timeout_factor * audio.duration_ms / 1000
            try:
                out = await child.run(job, timeout_s=timeout_s, on_progress=child_progress)
            except AsrProcessError as exc:
                log.warning("speech child failed: %s\n%s", exc, exc.stderr_tail[-2000:])
                return self.failed(_CHILD_FAILURES.get(exc.code, "asr_failed"), exc.message)
        finally:
            await child.close()
        return self.ready(out, loudness, talk_track)

    def ready(
        self, out: ChildResult, loudness: LoudnessMetrics | None, talk_track: TalkTrack | None
    ) -> SpeechResult:
        s = self.settings
        regions = [Region(a, b) for a, b in out.regions]
        if sum(r.duration_ms for r in regions) < s.min_total_speech_ms:
            return self.unavailable("no_speech", "No speech was found in the recording.")
        duration_ms = self.duration_ms or 0
        delivery = delivery_metrics(regions, duration_ms=duration_ms, pause_min_ms=s.pause_min_ms)
        transcript = out.transcript
        words = None
        talk = None
        if transcript is not None:
            words = transcript_metrics(
                transcript, speaking_ms=delivery.speaking_ms, fillers=s.fillers()
            )
            if talk_track:
                talk = match_talk_track(transcript, talk_track)
        trusted = transcript is not None and transcript.confidence_class == "high"
        return SpeechResult(
            status="ready",
            engine=s.engine,
            language=transcript.language if transcript is not None else s.language,
            duration_ms=duration_ms,
            confidence_class=transcript.confidence_class if transcript is not None else None,
            metrics=Metrics(delivery=delivery, loudness=loudness, transcript=words),
            flags=flags(s, delivery, loudness, words, transcript_trusted=trusted),
            talk_track=talk,
            transcript=transcript,
            processing=Processing(
                elapsed_ms=round((time.monotonic() - self.started) * 1000),
                vad_ms=out.vad_ms,
                asr_ms=out.asr_ms,
                asr_peak_rss_bytes=out.peak_rss_bytes,
            ),
        )


_CHILD_FAILURES: dict[str, FailedReason] = {
    "engine_error": "engine_error",
    "timeout": "timeout",
    "asr_failed": "asr_failed",
}
