"""Words of a transcript: normalisation, rate of speech, fillers and talk-track phrases (pure).

Phrases, fillers and transcripts go through the same `normalise`, so "We're" in a transcript
matches "we are" in a talk track and "Don't" matches "do not": case, punctuation, curly
apostrophes and English contractions never decide a match. Matching is on whole words in
order, across segment boundaries.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from app.speech.models import (
    PhraseResult,
    TalkTrackPhrase,
    TalkTrackResult,
    Transcript,
    TranscriptMetrics,
    Word,
)

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'"})  # noqa: RUF001
_IRREGULAR = {
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "shan't": "shall not",
    "ain't": "is not",
    "let's": "let us",
    "y'all": "you all",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "got to",
}
# 's is "is" only after these; elsewhere it is a possessive and stays part of the word.
_S_IS = frozenset(
    {"it", "that", "what", "there", "here", "he", "she", "who", "where", "how", "when", "why"}
)
_SUFFIXES = (("n't", " not"), ("'re", " are"), ("'m", " am"), ("'ve", " have"), ("'ll", " will"))
_SUFFIXES_D = "'d"  # would or had: "would", the same on both sides of a match
_TOKEN = re.compile(r"[\w']+")

# English fillers that are ordinary words after these ("I'd like to", "what kind of").
FILLER_EXCEPTIONS: dict[str, dict[str, frozenset[str]]] = {
    "en": {
        "like": frozenset(
            {"would", "i", "you", "we", "they", "look", "looks", "feel", "feels", "seem"}
            | {"seems", "sounds", "something", "things", "just", "much", "not", "really"}
        ),
        "kind of": frozenset(
            {"what", "this", "that", "these", "those", "any", "some", "the", "a", "every"}
            | {"which", "same", "other", "one", "our", "your", "their", "my", "that's"}
        ),
    }
}
FILLER_EXCEPTIONS["en"]["sort of"] = FILLER_EXCEPTIONS["en"]["kind of"]


def _expand(token: str) -> list[str]:
    if token in _IRREGULAR:
        return _IRREGULAR[token].split()
    for suffix, replacement in _SUFFIXES:
        if token.endswith(suffix) and len(token) > len(suffix):
            return [token[: -len(suffix)], replacement.strip()]
    if token.endswith(_SUFFIXES_D) and len(token) > 2:
        return [token[:-2], "would"]
    if token.endswith("'s") and token[:-2] in _S_IS:
        return [token[:-2], "is"]
    word = token.replace("'", "")
    return [word] if word else []


def normalise(text: str) -> list[str]:
    """Lower-case words without punctuation, contractions expanded."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    out: list[str] = []
    for raw in _TOKEN.findall(text):
        token = raw.strip("'_")
        if token:
            out.extend(t for t in _expand(token) if t)
    return out


def word_tokens(words: Sequence[Word]) -> tuple[list[str], list[int]]:
    """Normalised tokens of a transcript's words and, for each, the index of its word."""
    tokens: list[str] = []
    owner: list[int] = []
    for i, w in enumerate(words):
        for t in normalise(w.text):
            tokens.append(t)
            owner.append(i)
    return tokens, owner


def _find(tokens: Sequence[str], needle: Sequence[str]) -> list[int]:
    """Start indexes of non-overlapping occurrences of `needle` in `tokens`."""
    n = len(needle)
    found: list[int] = []
    i = 0
    while n and i + n <= len(tokens):
        if tokens[i : i + n] == list(needle):
            found.append(i)
            i += n
        else:
            i += 1
    return found


def count_fillers(
    tokens: Sequence[str], fillers: Iterable[str], language: str = "en"
) -> dict[str, int]:
    """Occurrences of each filler (longest first, non-overlapping), zeros left out."""
    exceptions = FILLER_EXCEPTIONS.get(language.split("-")[0].lower(), {})
    patterns = sorted(
        {" ".join(normalise(f)): normalise(f) for f in fillers if normalise(f)}.items(),
        key=lambda item: -len(item[1]),
    )
    counts: dict[str, int] = {}
    i = 0
    while i < len(tokens):
        for name, pattern in patterns:
            if list(tokens[i : i + len(pattern)]) != pattern:
                continue
            if i > 0 and tokens[i - 1] in exceptions.get(name, ()):
                continue
            counts[name] = counts.get(name, 0) + 1
            i += len(pattern)
            break
        else:
            i += 1
    return counts


def _per_minute(count: int, speaking_ms: int) -> float | None:
    return round(count * 60_000 / speaking_ms, 1) if speaking_ms > 0 else None


def transcript_metrics(
    transcript: Transcript, *, speaking_ms: int, fillers: Iterable[str]
) -> TranscriptMetrics:
    """Rate of speech and fillers per minute of speaking time (pauses excluded)."""
    words = transcript.words()
    spoken = sum(1 for w in words if normalise(w.text))
    tokens, _ = word_tokens(words)
    counts = count_fillers(tokens, fillers, transcript.language)
    total = sum(counts.values())
    return TranscriptMetrics(
        words=spoken,
        words_per_minute=_per_minute(spoken, speaking_ms),
        fillers=total,
        fillers_per_minute=_per_minute(total, speaking_ms),
        filler_counts=dict(sorted(counts.items())),
    )


def match_talk_track(transcript: Transcript, phrases: Sequence[TalkTrackPhrase]) -> TalkTrackResult:
    """Which phrases were said and where (each occurrence's first word), in input order."""
    words = transcript.words()
    tokens, owner = word_tokens(words)
    results: list[PhraseResult] = []
    for p in phrases:
        at = tuple(words[owner[i]].start_ms for i in _find(tokens, normalise(p.phrase)))
        results.append(
            PhraseResult(skill=p.skill, phrase=p.phrase, kind=p.kind, said=bool(at), at_ms=at)
        )
    return TalkTrackResult(
        phrases=tuple(results),
        used=sum(1 for r in results if r.kind == "use" and r.said),
        missing=sum(1 for r in results if r.kind == "use" and not r.said),
        avoided_said=sum(1 for r in results if r.kind == "avoid" and r.said),
    )
