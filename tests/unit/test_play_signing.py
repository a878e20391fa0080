from __future__ import annotations

import uuid

import pytest

from app.playback import signing

SECRET = "s" * 40


def test_token_is_dot_free_and_round_trips() -> None:
    clip_id = uuid.uuid4()
    token = signing.make_token(SECRET, clip_id, "job-1", 1_900_000_000)
    assert "." not in token and "/" not in token and "=" not in token
    parsed = signing.parse_token(token)
    assert (parsed.clip_id, parsed.exp) == (clip_id, 1_900_000_000)
    assert signing.verify(SECRET, parsed, "job-1")
    assert not signing.verify(SECRET, parsed, "job-2")
    assert not signing.verify("t" * 40, parsed, "job-1")


@pytest.mark.parametrize(
    "token",
    ["", "abc", "x-1-y", "0123456789abcdef0123456789abcdef-notanumber-sig", f"{'g' * 32}-1-sig"],
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(signing.MalformedToken):
        signing.parse_token(token)


def test_non_ascii_signature_is_refused_not_crashing() -> None:
    parsed = signing.parse_token(f"{uuid.uuid4().hex}-1-é")
    assert not signing.verify(SECRET, parsed, "v")
