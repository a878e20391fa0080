"""Speech settings: the PEERPITCH_* names map onto app.speech's settings, and a worker (a
process, or embedded in the API) refuses to start with an engine that cannot run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.main import create_app
from app.speech import SpeechConfigError, SpeechSettings
from workers.main import embedded_worker, run_worker


def test_defaults_are_the_libraries_and_env_names_reach_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert Settings().speech_settings() == SpeechSettings()
    env = {
        "PEERPITCH_ASR_ENGINE": "whisper",
        "PEERPITCH_ASR_MODEL_DIR": str(tmp_path),
        "PEERPITCH_SPEECH_LANGUAGE": "de",
        "PEERPITCH_SPEECH_LONG_PAUSE_MS": "2500",
        "PEERPITCH_SPEECH_TOO_QUIET_LUFS": "-28.5",
        "PEERPITCH_SPEECH_FILLER_WORDS": '{"DE": ["äh", "also"]}',
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    speech = Settings().speech_settings()
    assert (speech.engine, speech.model_dir, speech.language) == ("whisper", tmp_path, "de")
    assert (speech.long_pause_ms, speech.too_quiet_lufs) == (2500, -28.5)
    assert speech.fillers() == ("äh", "also")


def test_a_worker_without_its_whisper_model_does_not_start(make_settings: Any) -> None:
    settings = make_settings(asr_engine="whisper")
    with pytest.raises(SpeechConfigError, match="PEERPITCH_ASR_MODEL_DIR"):
        run_worker(settings, configure_logging=False)


async def test_the_api_with_an_embedded_worker_does_not_start_without_it(
    make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings(
        asr_engine="whisper", asr_model_dir=tmp_path / "missing", embedded_worker=True
    )
    app = create_app(settings, background=embedded_worker)
    with pytest.raises(SpeechConfigError, match="is not a folder"):
        async with app.router.lifespan_context(app):
            pass
    # Without an embedded worker, the API has nothing to check: it starts.
    app = create_app(
        settings.model_copy(update={"embedded_worker": False}), background=embedded_worker
    )
    async with app.router.lifespan_context(app):
        pass
