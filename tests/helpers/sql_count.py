"""Count the SQL statements the app runs during a block: the "no N+1" checks.

with statements_during(app) as statements:
    await client.get(...)
assert len(queries(statements)) == 1
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event


class statements_during:  # noqa: N801 - used as a context manager, reads like a phrase
    """Collect the SQL statements the app's engine runs inside the block."""

    def __init__(self, app: Any) -> None:
        self.engine = app.state.engine.sync_engine
        self.statements: list[str] = []

    def _record(self, *args: Any) -> None:
        self.statements.append(str(args[2]))

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self.statements

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def queries(statements: list[str]) -> list[str]:
    """The reads among ``statements`` (SELECT, or WITH ... SELECT) that the request's own work
    runs: not the caller's row, which app.auth.caller reads outside the session (on
    PostgreSQL not even through this engine) or reuses for up to PEERPITCH_AUTH_RECHECK_S."""
    return [
        s
        for s in statements
        if s.lstrip().upper().startswith(("SELECT", "WITH")) and not _is_caller_read(s)
    ]


def _is_caller_read(statement: str) -> bool:
    return "read_versions.version" in statement and "FROM users" in statement
