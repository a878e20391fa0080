"""Single-row reads on the hot paths (every authenticated request's caller, every playback
token's clip), outside the ORM session.

On PostgreSQL they go through a small asyncpg pool of their own rather than SQLAlchemy: for
a one-row read, SQLAlchemy's async machinery (greenlet hops, pool pre-ping, BEGIN/COMMIT
around the statement, ORM loading) costs several times the query. One statement outside a
transaction is its own snapshot, as fresh as a statement inside one. On SQLite the same
read is a deferred read transaction on the app's engine (never the write lock).

A lost connection (a restarted or terminated server) is retried once on a fresh one: the
read changes nothing, so repeating it is safe. Errors reaching the database surface as
SQLAlchemy's ``OperationalError`` (``connection_invalidated``), the type every other
database failure of the app has, so one error mapping covers both paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import is_sqlite


class HotReads:
    def __init__(self, engine: AsyncEngine, database_url: str, *, max_size: int = 10) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(database_url)
        self._dsn = (
            None
            if self.sqlite
            else make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def row(
        self, pg_sql: str, pg_args: tuple[Any, ...], stmt: Executable, params: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row of a read, or None: ``pg_sql`` with positional ``pg_args`` on
        PostgreSQL (asyncpg prepares and caches it per connection), ``stmt`` with ``params``
        on SQLite. Both must name the same columns."""
        if self.sqlite:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(sqlite_begin="")
                row = (await conn.execute(stmt, dict(params))).first()
            return None if row is None else dict(row._mapping)
        return await self._pg_row(pg_sql, pg_args)

    async def _pg_row(self, sql: str, args: tuple[Any, ...]) -> Mapping[str, Any] | None:
        import asyncpg  # type: ignore[import-untyped,unused-ignore]

        lost = (
            asyncpg.ConnectionDoesNotExistError,
            asyncpg.AdminShutdownError,  # pg_terminate_backend, a server shutting down
            asyncpg.InterfaceError,
            ConnectionError,
        )
        for attempt in (1, 2):
            try:
                pool = self._pool or await self._open()
                async with pool.acquire() as conn:
                    record: Mapping[str, Any] | None = await conn.fetchrow(sql, *args)
                    return record
            except lost as exc:
                if attempt == 2:
                    raise OperationalError(sql, args, exc, connection_invalidated=True) from exc
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
                raise OperationalError(sql, args, exc, connection_invalidated=True) from exc
        raise AssertionError("unreachable")

    async def _open(self) -> Any:
        import asyncpg

        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=1, max_size=self._max_size, reset=_no_session_state
                )
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


async def _no_session_state(_conn: Any) -> None:
    """Nothing to reset when a connection goes back to the pool: these reads set no session
    state (asyncpg still ends any open transaction); the default reset query would cost
    every read a second round trip."""
