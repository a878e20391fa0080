"""Speech analysis of a recorded pitch, offline on the worker: delivery metrics from voice
activity, loudness (EBU R 128), a transcript from a pluggable engine, metrics from the
transcript (rate, fillers, talk-track phrases) and WebVTT captions.

The speech job needs `analyze()` (and `check_engine()` at start-up); captions need
`to_vtt()` / `hls_vtt_chunks()`. Everything returned is a pydantic model that is stored as
JSON. This package imports no domain: only app.media (ffmpeg) and app.config.
"""

from app.speech.analyze import analyze
from app.speech.engines import (
    AsrEngine,
    PocketsphinxEngine,
    SpeechConfigError,
    WhisperEngine,
    check_engine,
)
from app.speech.models import (
    DeliveryMetrics,
    LoudnessMetrics,
    Metrics,
    Pause,
    PhraseResult,
    Segment,
    SpeechResult,
    TalkTrack,
    TalkTrackPhrase,
    TalkTrackResult,
    Transcript,
    TranscriptMetrics,
    Word,
)
from app.speech.settings import EngineName, SpeechSettings
from app.speech.text import match_talk_track, normalise, transcript_metrics
from app.speech.vtt import (
    VttChunk,
    hls_subtitles_playlist,
    hls_vtt_chunks,
    subtitles_media_tag,
    to_vtt,
)

__all__ = [
    "AsrEngine",
    "DeliveryMetrics",
    "EngineName",
    "LoudnessMetrics",
    "Metrics",
    "Pause",
    "PhraseResult",
    "PocketsphinxEngine",
    "Segment",
    "SpeechConfigError",
    "SpeechResult",
    "SpeechSettings",
    "TalkTrack",
    "TalkTrackPhrase",
    "TalkTrackResult",
    "Transcript",
    "TranscriptMetrics",
    "VttChunk",
    "WhisperEngine",
    "Word",
    "analyze",
    "check_engine",
    "hls_subtitles_playlist",
    "hls_vtt_chunks",
    "match_talk_track",
    "normalise",
    "subtitles_media_tag",
    "to_vtt",
    "transcript_metrics",
]
