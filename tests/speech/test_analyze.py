"""analyze() end to end: real ffmpeg, the real ASR child process, generated recordings."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from app.speech import SpeechResult, SpeechSettings, TalkTrackPhrase, analyze
from app.speech.process import AsrProcess
from tests.speech.conftest import Audio, Spoken

pytestmark = pytest.mark.ffmpeg

TOLERANCE_MS = 200


@pytest.fixture(scope="module")
def mix(audio: Audio) -> Spoken:
    # 1.5 s before the first word; pauses of 2.5 s, 1.2 s and 0.6 s (not a pause: < 1 s).
    return audio.spoken("mix", [1500, "s0", 2500, "s1", 1200, "s2", 600, "s0", 800])


async def test_delivery_of_speech_with_known_silences(
    audio: Audio, mix: Spoken, scratch: Path, no_asr: SpeechSettings
) -> None:
    video = audio.as_video(mix.path, "mix.mp4")
    progress: list[float] = []

    async def on_progress(fraction: float) -> None:
        progress.append(fraction)

    result = await analyze(video, settings=no_asr, scratch=scratch, on_progress=on_progress)

    assert result.status == "ready", result
    assert result.engine == "none"
    assert result.transcript is None
    assert result.confidence_class is None
    assert result.metrics is not None
    d = result.metrics.delivery
    assert abs(d.duration_ms - mix.duration_ms) <= 100
    assert abs(d.speaking_ratio - mix.speaking_ms / mix.duration_ms) <= 0.05
    assert abs(d.time_to_first_word_ms - mix.speech[0][0]) <= TOLERANCE_MS
    expected = [(a, b) for a, b in mix.pauses if b - a >= 1000]
    assert len(expected) == 2
    assert d.pause_count == len(expected)
    for pause, (start, end) in zip(d.pauses, expected, strict=True):
        assert abs(pause.start_ms - start) <= TOLERANCE_MS
        assert abs(pause.end_ms - end) <= TOLERANCE_MS
        assert pause.duration_ms == pause.end_ms - pause.start_ms
    assert abs(d.longest_pause_ms - 2500) <= TOLERANCE_MS
    # The last two sentences are one monologue: 0.6 s is no pause.
    monologue = mix.speech[3][1] - mix.speech[2][0]
    assert abs(d.longest_monologue_ms - monologue) <= 2 * TOLERANCE_MS
    assert abs(d.trailing_silence_ms - 800) <= TOLERANCE_MS

    loud = result.metrics.loudness
    assert loud is not None
    assert -40 < loud.integrated_lufs < -10
    assert loud.true_peak_dbtp is not None and loud.true_peak_dbtp < 0
    assert result.flags == ()  # 1.5 s start, 2.5 s longest pause, normal level
    assert progress == sorted(progress) and progress[-1] == 1.0
    # Stored as JSON, read back the same.
    assert SpeechResult.model_validate(result.model_dump(mode="json")) == result


async def test_flags_follow_the_thresholds(audio: Audio, mix: Spoken, scratch: Path) -> None:
    strict = SpeechSettings(
        engine="none", slow_start_ms=1000, long_pause_ms=2000, too_quiet_lufs=-5
    )
    result = await analyze(mix.path, settings=strict, scratch=scratch)
    assert result.status == "ready"
    assert result.flags == ("too_quiet", "long_pauses", "slow_start")


async def test_pocketsphinx_transcript_has_timed_segments_and_words(
    audio: Audio, scratch: Path
) -> None:
    clip = audio.spoken("sentence", [700, "s0", 500])
    talk_track = [
        TalkTrackPhrase(skill="discovery", phrase="What keeps you up at night?", kind="use"),
        TalkTrackPhrase(skill="discovery", phrase="to be honest", kind="avoid"),
    ]
    result = await analyze(
        clip.path, settings=SpeechSettings(), talk_track=talk_track, scratch=scratch
    )

    assert result.status == "ready", result
    assert result.engine == "pocketsphinx"
    assert result.confidence_class == "low"
    t = result.transcript
    assert t is not None
    assert (t.engine, t.confidence_class, t.language) == ("pocketsphinx", "low", "en")
    assert t.segments, "espeak-ng speech yields some words, however wrong"
    (speech_start, speech_end) = clip.speech[0]
    previous_end = 0
    for segment in t.segments:
        assert segment.text == " ".join(w.text for w in segment.words)
        assert segment.words and segment.start_ms == segment.words[0].start_ms
        assert segment.end_ms == segment.words[-1].end_ms
        assert segment.confidence is not None and 0 <= segment.confidence <= 1
        for word in segment.words:
            assert previous_end <= word.start_ms < word.end_ms
            # Words lie in the speech, give or take the recogniser's padding.
            assert speech_start - 300 <= word.start_ms and word.end_ms <= speech_end + 300
            assert word.confidence is not None and 0 <= word.confidence <= 1
            assert word.text and not word.text.startswith(("<", "[")) and "(" not in word.text
            previous_end = word.end_ms
    m = result.metrics
    assert m is not None and m.transcript is not None
    assert m.transcript.words == len(t.words())
    assert m.transcript.words_per_minute is not None and m.transcript.words_per_minute > 0
    # A low-confidence transcript raises no rate or filler flags.
    assert not {"too_slow", "too_fast", "many_fillers"} & set(result.flags)
    assert result.talk_track is not None
    assert [p.phrase for p in result.talk_track.phrases] == [p.phrase for p in talk_track]
    assert result.processing is not None and result.processing.asr_ms is not None
    assert SpeechResult.model_validate(result.model_dump(mode="json")) == result


async def test_silent_recording_is_unavailable(
    audio: Audio, scratch: Path, no_asr: SpeechSettings
) -> None:
    result = await analyze(audio.silent_video(), settings=no_asr, scratch=scratch)
    assert (result.status, result.reason) == ("unavailable", "silent")
    assert result.metrics is None and result.transcript is None
    assert result.duration_ms is not None and result.duration_ms > 2000


async def test_video_without_audio_is_unavailable(
    audio: Audio, scratch: Path, no_asr: SpeechSettings
) -> None:
    result = await analyze(audio.video_only(), settings=no_asr, scratch=scratch)
    assert (result.status, result.reason) == ("unavailable", "no_audio_stream")
    assert result.metrics is None
    assert not result.is_retryable()


async def test_sound_without_speech_is_unavailable(
    audio: Audio, scratch: Path, no_asr: SpeechSettings
) -> None:
    result = await analyze(audio.tone(), settings=no_asr, scratch=scratch)
    assert (result.status, result.reason) == ("unavailable", "no_speech")


async def test_unreadable_file_fails_for_good(
    tmp_path: Path, scratch: Path, no_asr: SpeechSettings
) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video\n" * 100)
    result = await analyze(junk, settings=no_asr, scratch=scratch)
    assert (result.status, result.reason) == ("failed", "invalid_media")
    assert not result.is_retryable()


async def test_recogniser_over_its_budget_is_killed(
    audio: Audio, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[AsrProcess] = []
    real_close = AsrProcess.close

    async def spy(self: AsrProcess) -> None:
        await real_close(self)
        closed.append(self)

    monkeypatch.setattr(AsrProcess, "close", spy)
    clip = audio.spoken("sentence", [700, "s0", 500])
    # A budget of a millisecond: decoding seconds of speech cannot fit in it.
    tight = SpeechSettings(asr_timeout_base_s=0.001, asr_timeout_factor=1e-9)
    result = await analyze(clip.path, settings=tight, scratch=scratch)
    assert (result.status, result.reason) == ("failed", "timeout")
    assert result.is_retryable()
    assert len(closed) == 1
    assert closed[0]._proc.returncode == -signal.SIGKILL


async def test_engine_that_cannot_load_fails_without_retry(
    audio: Audio, tmp_path: Path, scratch: Path
) -> None:
    clip = audio.spoken("sentence", [700, "s0", 500])
    broken = SpeechSettings(engine="whisper", model_dir=tmp_path)  # an empty folder
    result = await analyze(clip.path, settings=broken, scratch=scratch)
    assert (result.status, result.reason) == ("failed", "engine_error")
    assert not result.is_retryable()


class LeaseLost(Exception):
    """What a job's heartbeat raises when another worker took the job over."""


async def test_progress_callback_failure_stops_the_recogniser(
    audio: Audio, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[AsrProcess] = []
    real_close = AsrProcess.close

    async def spy(self: AsrProcess) -> None:
        await real_close(self)
        closed.append(self)

    monkeypatch.setattr(AsrProcess, "close", spy)

    async def heartbeat(fraction: float) -> None:
        if fraction > 0.05:  # the child's first report: voice activity done, decoding next
            raise LeaseLost

    clip = audio.spoken("sentence", [700, "s0", 500])
    with pytest.raises(LeaseLost):
        await analyze(clip.path, settings=SpeechSettings(), scratch=scratch, on_progress=heartbeat)
    assert len(closed) == 1
    assert closed[0]._proc.returncode == -signal.SIGKILL
