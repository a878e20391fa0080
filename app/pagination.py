"""Keyset (cursor) pagination: stable order, opaque cursors, one query per page."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Integer, Select, and_, bindparam, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

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


def page_params(
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
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        if "u" in value:
            return uuid.UUID(value["u"])
        raise ValueError("unknown cursor value")
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError("wrong arity")
        return [_decode_value(v) for v in values]
    except (ValueError, TypeError, KeyError, binascii.Error, json.JSONDecodeError) as exc:
        raise Unprocessable("The cursor is not valid.", code="invalid_cursor") from exc


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
        stmt = stmt.where(_after(keys, decode_cursor(params.cursor, len(keys))))
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
        after = decode_cursor(params.cursor, len(keys))
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
        next_cursor = encode_cursor([getattr(last, k.column.key) for k in keys])
    return rows, next_cursor
