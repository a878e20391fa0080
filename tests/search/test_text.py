"""The search's words, queries and snippets (app.search.text): the same on both databases,
since the databases only ever see the words made here."""

from __future__ import annotations

import unicodedata

from app.search.text import SNIPPET_CHARS, clean, parse_query, snippet, terms


def test_words_are_folded_letters_and_digits() -> None:
    assert terms("Élan, ÉLAN & elan!") == "elan elan elan"
    assert terms("Straße e-mail user@acme.com v1.2 ﬁne") == "strasse e mail user acme com v1 2 fine"
    assert terms("snake_case <b>bold</b>") == "snake case b bold b"
    assert terms("... ?! --") == ""
    assert terms("x" * 101 + " kept") == "kept"  # a "word" that long is not searchable
    # An accent typed as a combining character does not split its word.
    assert terms(unicodedata.normalize("NFD", "café crème")) == "cafe creme"


def test_queries_are_words_and_quoted_phrases_without_operators() -> None:
    assert parse_query('ROI "next  steps" budget').parts == (
        ("roi",), ("next", "steps"), ("budget",),
    )  # fmt: skip
    # -, or, *, unbalanced quotes: plain text; empty phrases and repeats add nothing.
    assert parse_query('-price OR cost* "" "open end').parts == (
        ("price",), ("or",), ("cost",), ("open", "end"),
    )  # fmt: skip
    assert parse_query("roi roi").parts == (("roi",),)
    assert parse_query(" ?! ").parts == ()
    assert parse_query('a "b c"').expression == '"a" "b c"'


def test_snippets_escape_everything_but_the_marks() -> None:
    query = parse_query('"next steps" <script>')
    text = clean('<script>alert("x")</script> &\n\n next   steps, then NEXT STEPS\x07.')
    assert snippet(text, query) == (
        "&lt;<mark>script</mark>&gt;alert(&quot;x&quot;)&lt;/<mark>script</mark>&gt; &amp; "
        "<mark>next steps</mark>, then <mark>NEXT STEPS</mark> ."
    )
    # A phrase is marked only where all its words follow each other.
    assert snippet("steps then next", parse_query('"next steps"')) == "steps then next"


def test_a_long_text_is_cut_around_its_best_stretch() -> None:
    text = " ".join(f"w{i}" for i in range(60)) + " the budget owner signs " + "tail " * 60
    shown = snippet(text, parse_query("budget owner"))
    assert shown.startswith("… ") and shown.endswith(" …")
    assert "<mark>budget owner</mark>" in shown
    plain = shown.replace("<mark>", "").replace("</mark>", "")
    assert len(plain) <= SNIPPET_CHARS + 4
    for word in plain.strip("… ").split():  # cut between words, never inside one
        assert word in text.split()
    # The stretch with the most different parts wins over the first match.
    text = "budget " + "filler " * 40 + "budget owner"
    assert snippet(text, parse_query("budget owner")).endswith("<mark>budget owner</mark>")
