"""Words, queries and snippets of the search, in Python so both databases behave the same.

A text is split into words here, not by the database: a word is a run of letters and digits
(anything else separates words), folded to lower case without accents or compatibility forms
("Élan", "ELAN" and "élan" are all "elan"; "Straße" is "strasse"). The index stores each
document's words as ``terms`` (the words joined by spaces), and both engines tokenise that
string the same trivial way: PostgreSQL's ``to_tsvector('simple', terms)`` and SQLite FTS5's
``unicode61`` tokenizer see nothing but plain words. PostgreSQL's own parser would otherwise
treat URLs, e-mail addresses, hyphenated words and tags its own way, and the two databases
would find different things.

No stemming and no stop words (PostgreSQL's 'simple' configuration): transcripts and feedback
are written in the team's language, which need not be English, and a search for a talk-track
phrase made of common words ("you know", "to be honest") must find it, where an English
configuration would drop every one of its words.

A query is a list of parts: each word outside double quotes is a part, and the text between
double quotes is a part of several words (a phrase). A document matches when it has every part,
a phrase as consecutive words. Nothing else is an operator (``or``, ``-``, ``*`` are ordinary).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# A run of letters and digits (str.isalnum), in the text as written.
_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")
# Longer "words" (hashes, base64, a run of digits) are not searchable: PostgreSQL refuses
# lexemes over 2 KiB, and nobody types them.
MAX_WORD_CHARS = 100
# The characters a snippet's highlighting is built from, in the snippet's HTML.
MARK_START, MARK_END = "<mark>", "</mark>"
ELLIPSIS = "…"
# A snippet of a longer text: about this many characters around its best match.
SNIPPET_CHARS = 160
_CONTEXT_BEFORE = 40


def fold(word: str) -> str:
    """A word as the index keeps it: compatibility forms decomposed, accents dropped, case
    folded, only letters and digits kept."""
    if word.isascii():  # the common case: letters and digits already
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed.casefold() if ch.isalnum())


def words(text: str) -> list[str]:
    """The searchable words of ``text``, folded, in order (split after composing accents, so
    an "é" typed as "e" and a combining accent does not split its word)."""
    found = (fold(match.group()) for match in _WORD.finditer(unicodedata.normalize("NFC", text)))
    return [w for w in found if w and len(w) <= MAX_WORD_CHARS]


def terms(text: str) -> str:
    """What the index stores for ``text``: its words, space-separated ("" when it has none)."""
    return " ".join(words(text))


# C0 controls and DEL, except tab, line feed and carriage return: meaningless in text people
# read, and kept out of what is stored and shown.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(text: str) -> str:
    """The text a document shows (in snippets): as written, without control characters."""
    return _CONTROL.sub(" ", unicodedata.normalize("NFC", text))


@dataclass(frozen=True)
class Query:
    """A parsed query: its parts, each one word or a phrase of several."""

    parts: tuple[tuple[str, ...], ...]

    @property
    def expression(self) -> str:
        """The parts as one match expression, each in double quotes: a phrase for SQLite
        FTS5's MATCH and for PostgreSQL's ``websearch_to_tsquery``, the parts ANDed. The
        words are letters and digits only, so nothing in it is an operator."""
        return " ".join(f'"{" ".join(part)}"' for part in self.parts)


def parse_query(q: str) -> Query:
    """The parts of ``q``; a quote left open runs to the end. Words are folded like the
    documents'; parts without any word are dropped (``Query.parts`` may be empty)."""
    parts: list[tuple[str, ...]] = []
    for i, chunk in enumerate(q.split('"')):
        if i % 2:  # between quotes: one phrase
            phrase = tuple(words(chunk))
            if phrase:
                parts.append(phrase)
        else:
            parts.extend((w,) for w in words(chunk))
    return Query(tuple(dict.fromkeys(parts)))  # a repeated part adds nothing


def has_words(q: str) -> bool:
    return bool(parse_query(q).parts)


# --- snippets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    word: str


def _tokens(text: str) -> list[_Token]:
    """``words`` of a text already composed (``clean``), with where each one is."""
    found = []
    for match in _WORD.finditer(text):
        word = fold(match.group())
        if word and len(word) <= MAX_WORD_CHARS:
            found.append(_Token(match.start(), match.end(), word))
    return found


def _matches(tokens: Sequence[_Token], query: Query) -> list[tuple[int, int, int]]:
    """Every occurrence of a part in ``tokens``: (first token, last token + 1, part index)."""
    found = []
    sequence = [t.word for t in tokens]
    for index, part in enumerate(query.parts):
        size = len(part)
        for i in range(len(sequence) - size + 1):
            if sequence[i] == part[0] and tuple(sequence[i : i + size]) == part:
                found.append((i, i + size, index))
    return found


def _window(text: str, tokens: Sequence[_Token], matches: list[tuple[int, int, int]]) -> range:
    """The characters of ``text`` a snippet shows: all of a short text; else about
    SNIPPET_CHARS from a little before the match that starts the stretch holding the most
    different parts (the earliest such), cut at word boundaries."""
    if len(text) <= SNIPPET_CHARS:
        return range(0, len(text))
    reach = SNIPPET_CHARS - _CONTEXT_BEFORE
    starts = sorted((tokens[first].start, part) for first, _last, part in matches)
    best_start, best_count = 0, 0
    inside: Counter[int] = Counter()  # parts of the matches in [starts[left], + reach)
    right = 0
    for start, part in starts:  # a sliding window: linear in the number of matches
        while right < len(starts) and starts[right][0] < start + reach:
            inside[starts[right][1]] += 1
            right += 1
        if len(inside) > best_count:
            best_start, best_count = start, len(inside)
        inside[part] -= 1
        if not inside[part]:
            del inside[part]
    end = min(len(text), max(0, best_start - _CONTEXT_BEFORE) + SNIPPET_CHARS)
    begin = max(0, end - SNIPPET_CHARS)
    for token in tokens:  # no word cut in two: a word across an edge is left out
        if token.start < begin < token.end:
            begin = token.end
        if token.start < end < token.end:
            end = token.start
    return range(begin, end)


def _escaped(text: str) -> str:
    return html.escape(_SPACE.sub(" ", text), quote=True)


def snippet(text: str, query: Query) -> str:
    """``text`` (or its best stretch, with "…" where it is cut) as HTML: everything escaped
    (``& < > " '``), every occurrence of a part of ``query`` in ``<mark>…</mark>`` (consecutive
    marked words in one element), whitespace runs as one space. No other tags."""
    tokens = _tokens(text)
    matches = _matches(tokens, query)
    shown = _window(text, tokens, matches)
    spans: list[list[int]] = []  # merged [start, end) of the marked words shown
    for i in sorted({i for first, last, _part in matches for i in range(first, last)}):
        token = tokens[i]
        if token.start < shown.start or token.end > shown.stop:
            continue
        if spans and not text[spans[-1][1] : token.start].strip():
            spans[-1][1] = token.end
        else:
            spans.append([token.start, token.end])
    out, at = [], shown.start
    for start, end in spans:
        out += [_escaped(text[at:start]), MARK_START, _escaped(text[start:end]), MARK_END]
        at = end
    out.append(_escaped(text[at : shown.stop]))
    body = "".join(out).strip()
    before = ELLIPSIS + " " if shown.start > 0 else ""
    after = " " + ELLIPSIS if shown.stop < len(text) else ""
    return before + body + after
