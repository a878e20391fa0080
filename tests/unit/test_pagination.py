from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.errors import Unprocessable
from app.pagination import decode_cursor, encode_cursor


def test_cursor_round_trips_typed_values() -> None:
    values = [datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC), uuid.uuid4(), 42, "x"]
    cursor = encode_cursor(values)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor, 4) == values


@pytest.mark.parametrize(
    "bad", ["", "!!!", "bm90IGpzb24", encode_cursor([1]), encode_cursor([{"z": 1}, 2])]
)
def test_bad_cursors_are_422(bad: str) -> None:
    with pytest.raises(Unprocessable):
        decode_cursor(bad, 2)
