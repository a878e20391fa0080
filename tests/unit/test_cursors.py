"""Typed list cursors (app.pagination): a cursor names a position in one list, and every value
in it is checked against its column before it reaches a query."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.clips.models import Clip
from app.errors import Unprocessable
from app.exemplars.models import Exemplar
from app.feedback.models import Feedback
from app.notifications.models import Notification
from app.pagination import SortKey, decode_page_cursor, encode_cursor, encode_page_cursor
from app.users.models import User

CLIPS = (SortKey(Clip.created_at, descending=True), SortKey(Clip.id, descending=True))
NOTIFICATIONS = (
    SortKey(Notification.created_at, descending=True),
    SortKey(Notification.id, descending=True),
)
THREADS = (SortKey(Feedback.timestamp_ms), SortKey(Feedback.created_at), SortKey(Feedback.id))
LIBRARY = (SortKey(Exemplar.score, descending=True), SortKey(Exemplar.id, descending=True))
PEOPLE = (SortKey(User.name), SortKey(User.id))

AT = datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC)
ID = uuid.uuid4()


def _raw(cursor: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _carried(values: list[Any]) -> list[Any]:
    """What the cursor carries for ``values`` (times and UUIDs tagged, the rest as is)."""
    return [
        {"t": v.isoformat()} if isinstance(v, datetime) else {"u": str(v)}
        if isinstance(v, uuid.UUID) else v
        for v in values
    ]  # fmt: skip


def _invalid(cursor: str, keys: Any) -> bool:
    with pytest.raises(Unprocessable) as caught:
        decode_page_cursor(cursor, keys)
    return caught.value.code == "invalid_cursor" and caught.value.status_code == 422


@pytest.mark.parametrize(
    ("keys", "values"),
    [
        (CLIPS, [AT, ID]),
        (THREADS, [2**31 - 1, AT, ID]),
        (THREADS, [0, AT, ID]),
        (LIBRARY, [0.4123456789012345, ID]),
        (LIBRARY, [0.0, ID]),
        (PEOPLE, ['Zoë "Z" O\'Neil', ID]),
    ],
)
def test_round_trip(keys: Any, values: list[Any]) -> None:
    cursor = encode_page_cursor(keys, values)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_page_cursor(cursor, keys) == values


def test_times_come_back_in_utc() -> None:
    east = AT.astimezone(timezone(timedelta(hours=5)))
    (decoded, _id) = decode_page_cursor(encode_page_cursor(CLIPS, [east, ID]), CLIPS)
    assert decoded == AT and decoded.tzinfo is UTC


def test_a_cursor_names_its_list() -> None:
    clips = encode_page_cursor(CLIPS, [AT, ID])
    # The same shape (a time and an id), another list: refused.
    assert _invalid(clips, NOTIFICATIONS)
    assert _invalid(encode_page_cursor(NOTIFICATIONS, [AT, ID]), CLIPS)
    # Another order over the same columns is another list too.
    ascending = (SortKey(Clip.created_at), SortKey(Clip.id))
    assert _invalid(clips, ascending)
    # Another shape.
    assert _invalid(clips, THREADS)
    assert _invalid(encode_page_cursor(THREADS, [1, AT, ID]), CLIPS)
    # Untagged (as cursors were before): refused.
    assert _invalid(encode_cursor([AT, ID]), CLIPS)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "bm90IGpzb24",  # "not json"
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),
        base64.urlsafe_b64encode(b'{"t": 1}').decode(),
        base64.urlsafe_b64encode(b"[NaN, Infinity, -Infinity]").decode(),
        base64.urlsafe_b64encode(b"[" * 300 + b"]" * 300).decode(),
    ],
)
def test_tampered_cursors_are_refused(cursor: str) -> None:
    assert _invalid(cursor, CLIPS)


def test_a_changed_character_is_refused_or_still_typed() -> None:
    """Flipping any one character of a cursor either breaks it (422) or yields a position of
    the right types: never a value that could fail in the database."""
    cursor = encode_page_cursor(THREADS, [1500, AT, ID])
    codes: set[str] = set()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, char in enumerate(cursor):
        for other in alphabet[::7]:
            if other == char:
                continue
            tampered = cursor[:i] + other + cursor[i + 1 :]
            try:
                timestamp, at, ident = decode_page_cursor(tampered, THREADS)
            except Unprocessable as exc:
                codes.add(exc.code)
                continue
            assert type(timestamp) is int and -(2**31) <= timestamp < 2**31
            assert isinstance(at, datetime) and at.tzinfo is UTC
            assert isinstance(ident, uuid.UUID)
    assert codes == {"invalid_cursor"}


@pytest.mark.parametrize(
    ("keys", "values"),
    [
        # The probe's: a string where a time belongs.
        (CLIPS, ["yesterday", ID]),
        (CLIPS, [{"t": "yesterday"}, ID]),
        (CLIPS, [{"t": "2026-01-02T03:04:05"}, ID]),  # no offset
        (CLIPS, [{"t": "0001-01-01T00:00:00+05:00"}, ID]),  # before year 1 in UTC
        (CLIPS, [{"t": 1767225600}, ID]),
        (CLIPS, [1767225600, ID]),
        (CLIPS, [AT, str(ID)]),
        (CLIPS, [AT, {"u": 5}]),
        (CLIPS, [AT, {"u": "not-a-uuid"}]),
        (CLIPS, [AT, {"u": str(ID), "t": "x"}]),
        (CLIPS, [AT, None]),
        (THREADS, [2**31, AT, ID]),  # beyond PostgreSQL's INTEGER
        (THREADS, [-(2**31) - 1, AT, ID]),
        (THREADS, [10**30, AT, ID]),
        (THREADS, [1.5, AT, ID]),
        (THREADS, [True, AT, ID]),
        (THREADS, ["1", AT, ID]),
        (LIBRARY, ["0.5", ID]),
        (LIBRARY, [False, ID]),
        (LIBRARY, [[0.5], ID]),
        (PEOPLE, [7, ID]),
        (PEOPLE, ["a\x00b", ID]),
        (PEOPLE, ["x" * 201, ID]),  # longer than the column
    ],
)
def test_values_of_the_wrong_type_or_range_are_refused(keys: Any, values: list[Any]) -> None:
    cursor = encode_page_cursor(keys, values)
    assert _raw(cursor)[1:] == json.loads(json.dumps(_carried(values)))  # as crafted
    assert _invalid(cursor, keys)


def test_numbers_that_fit_are_accepted() -> None:
    # A float column takes any finite number; an integer column any integer in its range.
    assert decode_page_cursor(encode_page_cursor(LIBRARY, [1, ID]), LIBRARY) == [1.0, ID]
    assert decode_page_cursor(encode_page_cursor(THREADS, [-(2**31), AT, ID]), THREADS)[0] == (
        -(2**31)
    )
