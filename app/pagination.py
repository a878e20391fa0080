"""Keyset (cursor) pagination: stable order, opaque cursors, one query per page."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Integer,
    Select,
    SmallInteger,
    String,
    TypeDecorator,
    Uuid,
    and_,
    bindparam,
    or_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import TypeEngine

from app.errors import Unprocessable

T = TypeVar("T")
M = TypeVar("M")
R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..100).")] = (
        DEFAULT_LIMIT
    ),
    cursor: Annotated[
        str | None, Query(max_length=512, description="Opaque cursor from `next_cursor`.")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


@dataclass(frozen=True)
class SortKey:
    column: InstrumentedAttribute[Any]
    descending: bool = False


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((kind, text),) = value.items()
            if kind == "t" and isinstance(text, str):
                return datetime.fromisoformat(text)
            if kind == "u" and isinstance(text, str):
                return uuid.UUID(text)
        raise ValueError("unknown cursor value")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a cursor value")


def _invalid_cursor() -> Unprocessable:
    return Unprocessable(
        "The cursor is not valid: pass this list's next_cursor unchanged.",
        code="invalid_cursor",
        details=[{"loc": ["query", "cursor"], "msg": "not a cursor of this list"}],
    )


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The values of a cursor, untyped; `decode_page_cursor` checks them against a list."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode())
        values = json.loads(raw, parse_constant=_no_constant)
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError("wrong arity")
        return [_decode_value(v) for v in values]
    except (ValueError, TypeError, RecursionError, binascii.Error) as exc:
        raise _invalid_cursor() from exc


def _list_tag(keys: Sequence[SortKey]) -> str:
    """Which list a cursor belongs to: a digest of the list's order (columns, directions),
    so another list's cursor is refused rather than read as a position in this one."""
    order = ",".join(f"{k.column}{' desc' if k.descending else ''}" for k in keys)
    return hashlib.blake2s(order.encode(), digest_size=4).hexdigest()


def _column_type(key: SortKey) -> TypeEngine[Any]:
    sql_type: TypeEngine[Any] = key.column.type
    while isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    return sql_type


def _int_bits(sql_type: Integer) -> int:
    # PostgreSQL's widths (SQLite's integers are all 64-bit, so these fit there too).
    if isinstance(sql_type, BigInteger):
        return 64
    return 16 if isinstance(sql_type, SmallInteger) else 32


def _typed(key: SortKey, value: Any) -> Any:
    """``value`` as a bind value of ``key``'s column, or ValueError. A cursor is client input:
    a value of another type or beyond the column's range would fail in the database driver
    (a 500) instead of being refused."""
    sql_type = _column_type(key)
    if isinstance(sql_type, DateTime):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("expected a time with its offset")
        return value.astimezone(UTC)  # OverflowError at the ends of the calendar
    if isinstance(sql_type, Uuid):
        if not isinstance(value, uuid.UUID):
            raise ValueError("expected a UUID")
        return value
    if isinstance(sql_type, Integer):
        limit = 2 ** (_int_bits(sql_type) - 1)
        if type(value) is not int or not -limit <= value < limit:
            raise ValueError("expected an integer in the column's range")
        return value
    if isinstance(sql_type, Float):
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ValueError("expected a finite number")
        return float(value)
    if isinstance(sql_type, String):
        if not isinstance(value, str) or "\x00" in value:
            raise ValueError("expected text")
        if sql_type.length is not None and len(value) > sql_type.length:
            raise ValueError("longer than the column")
        return value
    # A programming error, not the client's: not caught as an invalid cursor.
    raise NotImplementedError(f"no cursor type rule for {key.column} ({sql_type!r})")


def encode_page_cursor(keys: Sequence[SortKey], values: Sequence[Any]) -> str:
    """The cursor after a row whose sort-key values are ``values``, tagged with its list."""
    return encode_cursor([_list_tag(keys), *values])


def decode_page_cursor(cursor: str, keys: Sequence[SortKey]) -> list[Any]:
    """The position a cursor of the list ordered by ``keys`` names, each value typed as its
    column. Anything else (garbled, cut, another list's, a value of the wrong type or out of
    range) is 422 ``invalid_cursor``, never a database error."""
    tag, *values = decode_cursor(cursor, len(keys) + 1)
    try:
        if not isinstance(tag, str) or tag != _list_tag(keys):
            raise ValueError("another list's cursor")
        return [_typed(key, value) for key, value in zip(keys, values, strict=True)]
    except (ValueError, TypeError, OverflowError) as exc:
        raise _invalid_cursor() from exc


def _after(keys: Sequence[SortKey], values: Sequence[Any]) -> Any:
    """Rows strictly after ``values`` in the order given by ``keys`` (row-value comparison
    spelled out as OR-of-ANDs so mixed directions work on every backend)."""
    clauses = []
    for i, key in enumerate(keys):
        equal_prefix = [keys[j].column == values[j] for j in range(i)]
        step = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(and_(*equal_prefix, step))
    return or_(*clauses)


async def paginate(
    session: AsyncSession,
    stmt: Select[M],
    keys: Sequence[SortKey],
    params: PageParams,
) -> tuple[list[M], str | None]:
    """Run ``stmt`` for one page of entities. ``keys`` must end with a unique column (the id)."""
    rows = list((await session.scalars(page_statement(stmt, keys, params))).all())
    return cut_page(rows, keys, params)


def page_statement(
    stmt: Select[*tuple[Any, ...]], keys: Sequence[SortKey], params: PageParams
) -> Any:
    """``stmt`` limited to the page after the cursor, plus one row to tell if more follow."""
    if params.cursor:
        stmt = stmt.where(_after(keys, decode_page_cursor(params.cursor, keys)))
    order = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    return stmt.order_by(*order).limit(params.limit + 1)


PAGE_LIMIT_PARAM = "page_limit"


def _after_param(i: int) -> str:
    return f"page_after_{i}"


def keyset_page_shape(
    stmt: Select[*tuple[Any, ...]], keys: Sequence[SortKey], *, after_cursor: bool
) -> Any:
    """`page_statement` with bind parameters instead of values, so one statement object
    serves every page (build it once: SQLAlchemy then reuses its cache key and compiled
    form instead of rebuilding both per request). Run it with `keyset_page_params`."""
    if after_cursor:
        stmt = stmt.where(_after(keys, [bindparam(_after_param(i)) for i in range(len(keys))]))
    order = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    return stmt.order_by(*order).limit(bindparam(PAGE_LIMIT_PARAM, type_=Integer))


def keyset_page_params(keys: Sequence[SortKey], params: PageParams) -> dict[str, Any]:
    values: dict[str, Any] = {PAGE_LIMIT_PARAM: params.limit + 1}
    if params.cursor:
        after = decode_page_cursor(params.cursor, keys)
        values.update({_after_param(i): v for i, v in enumerate(after)})
    return values


def cut_page(
    rows: list[R], keys: Sequence[SortKey], params: PageParams
) -> tuple[list[R], str | None]:
    """The page's rows (in key order) and the cursor after them, if more follow."""
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        last = rows[-1]
        next_cursor = encode_page_cursor(keys, [getattr(last, k.column.key) for k in keys])
    return rows, next_cursor
