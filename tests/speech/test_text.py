"""Normalisation, fillers, rate of speech and talk-track matching on made-up transcripts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.speech import (
    Segment,
    SpeechSettings,
    TalkTrackPhrase,
    Transcript,
    Word,
    match_talk_track,
    normalise,
    transcript_metrics,
)
from app.speech.text import count_fillers


def transcript(*segments: str, engine: str = "whisper", step_ms: int = 400) -> Transcript:
    """Words 400 ms apart, segments one after another."""
    at = 0
    out = []
    for text in segments:
        words = []
        for token in text.split():
            words.append(Word(start_ms=at, end_ms=at + step_ms - 50, text=token, confidence=0.9))
            at += step_ms
        out.append(
            Segment(
                start_ms=words[0].start_ms, end_ms=words[-1].end_ms, text=text, words=tuple(words)
            )
        )
    return Transcript.model_validate(
        {"engine": engine, "confidence_class": "high", "language": "en", "segments": out}
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("We\u2019re here\u2014don't worry.", ["we", "are", "here", "do", "not", "worry"]),
        (
            "I'm sure it's what you'll love; they've said so",
            [
                "i",
                "am",
                "sure",
                "it",
                "is",
                "what",
                "you",
                "will",
                "love",
                "they",
                "have",
                "said",
                "so",
            ],
        ),
        ("Can't, won't, let's", ["can", "not", "will", "not", "let", "us"]),
        ("cannot", ["can", "not"]),
        ("the company's ROI", ["the", "companys", "roi"]),
        ("follow-up", ["follow", "up"]),
        ("I'd", ["i", "would"]),
        ("...", []),
    ],
)
def test_normalise(text: str, expected: list[str]) -> None:
    assert normalise(text) == expected


def test_fillers_longest_first_and_not_inside_longer_ones() -> None:
    tokens = normalise("Um, you know, it is basically like, you know, uh, great. I mean it.")
    counts = count_fillers(tokens, SpeechSettings().fillers())
    assert counts == {"um": 1, "you know": 2, "basically": 1, "like": 1, "uh": 1, "i mean": 1}


def test_like_and_kind_of_as_ordinary_words_are_not_fillers() -> None:
    tokens = normalise(
        "I'd like to show you what kind of results we like. It was like, kind of big."
    )
    counts = count_fillers(tokens, SpeechSettings().fillers())
    assert counts == {"like": 1, "kind of": 1}


def test_transcript_metrics_per_minute_of_speaking_time() -> None:
    t = transcript("So um we help teams", "uh you know close faster")  # 10 words
    m = transcript_metrics(t, speaking_ms=30_000, fillers=SpeechSettings().fillers())
    assert m.words == 10
    assert m.words_per_minute == 20.0  # over 30 s of speaking, not the recording
    assert (m.fillers, m.filler_counts) == (3, {"uh": 1, "um": 1, "you know": 1})
    assert m.fillers_per_minute == 6.0
    empty = transcript_metrics(transcript(), speaking_ms=0, fillers=["um"])
    assert (empty.words, empty.words_per_minute, empty.fillers_per_minute) == (0, None, None)


def test_talk_track_phrases_said_where_and_missing() -> None:
    t = transcript(
        "Hi! What keeps you up at night?",
        "We're the only platform that... to be honest",
        "we are the only platform built for reps.",
    )
    phrases = [
        TalkTrackPhrase(skill="discovery", phrase="what keeps you UP at night", kind="use"),
        TalkTrackPhrase(skill="positioning", phrase="We are the only platform", kind="use"),
        TalkTrackPhrase(skill="closing", phrase="Shall we book a follow-up?", kind="use"),
        TalkTrackPhrase(skill="positioning", phrase="to be honest", kind="avoid"),
        TalkTrackPhrase(skill="positioning", phrase="cheap", kind="avoid"),
    ]
    result = match_talk_track(t, phrases)
    by_phrase = {p.phrase: p for p in result.phrases}
    assert [p.phrase for p in result.phrases] == [p.phrase for p in phrases]
    assert by_phrase["what keeps you UP at night"].at_ms == (400,)  # its first word, "What"
    # "We're" matches "we are": said twice, at each first word.
    assert by_phrase["We are the only platform"].at_ms == (2800, 6000)
    assert by_phrase["Shall we book a follow-up?"].said is False
    assert by_phrase["to be honest"].said and by_phrase["to be honest"].at_ms == (4800,)
    assert by_phrase["cheap"].at_ms == ()
    assert (result.used, result.missing, result.avoided_said) == (2, 1, 1)


def test_phrases_match_across_segments_but_only_whole_words() -> None:
    t = transcript("return on", "investment is what reps sell")
    phrases = [
        TalkTrackPhrase(skill="value", phrase="return on investment", kind="use"),
        TalkTrackPhrase(skill="value", phrase="rep", kind="use"),
    ]
    result = match_talk_track(t, phrases)
    assert [p.said for p in result.phrases] == [True, False]


def test_a_phrase_needs_a_word() -> None:
    with pytest.raises(ValidationError):
        TalkTrackPhrase(skill="x", phrase="?!", kind="use")
    with pytest.raises(ValidationError):
        TalkTrackPhrase.model_validate({"skill": "x", "phrase": "hi", "kind": "maybe"})
