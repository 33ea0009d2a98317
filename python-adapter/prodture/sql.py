"""Ready-made SQL effects with DB-API performers (sqlite3, psycopg 3, any DB-API driver).

In a handler::

    from prodture import sql

    rows = await sql.query("SELECT id, starts FROM bookings WHERE room = ?", (room,))
    done = await sql.execute("INSERT INTO bookings (room, guest) VALUES (?, ?)", (room, guest))
    new_id = done.lastrowid

Parameters use the driver's own style (``?`` for sqlite3, ``%s`` for psycopg). ``query`` answers
the rows as a list of dicts (column name → value); ``execute`` answers an :class:`ExecResult`.

**Transactions.** The connection and its transaction belong to one execution, not to the
interpreter: open them around the run and let the performers find them through
:mod:`prodture.scope` (the FastAPI integration's ``resources=`` does this per request)::

    interpreter = Interpreter(sql.performers())           # reads resources()["db"]
    outcome = sql.run_in_transaction(interpreter, book, request, connect())
    # commits when the handler succeeded, rolls back when it failed

Replay needs no database: the rows come from the trace.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from .effects import Effect, register
from .runtime import Interpreter, Outcome
from .scope import resources, resources_scope

__all__ = [
    "Query",
    "Execute",
    "ExecResult",
    "query",
    "execute",
    "performers",
    "run_in_transaction",
    "run_in_transaction_async",
]


@dataclasses.dataclass(frozen=True)
class Query(Effect, name="prodture.sql.Query"):
    """Rows of a SELECT (or any statement returning rows), as a list of dicts."""

    sql: str
    params: tuple[Any, ...] | dict[str, Any] = ()


@dataclasses.dataclass(frozen=True)
class Execute(Effect, name="prodture.sql.Execute"):
    """A statement run for its effect: answers an :class:`ExecResult`."""

    sql: str
    params: tuple[Any, ...] | dict[str, Any] = ()


@register(name="prodture.sql.ExecResult")
@dataclasses.dataclass(frozen=True)
class ExecResult:
    rowcount: int
    lastrowid: int | None = None


def query(sql: str, params: Any = ()) -> Query:
    return Query(sql, _params(params))


def execute(sql: str, params: Any = ()) -> Execute:
    return Execute(sql, _params(params))


def _params(params: Any) -> tuple[Any, ...] | dict[str, Any]:
    return dict(params) if isinstance(params, dict) else tuple(params)


def performers(connection: Any = None, *, key: str = "db") -> dict[type, Callable[[Any], Any]]:
    """``{Query: ..., Execute: ...}`` using ``connection``, or by default the per-execution
    connection ``prodture.scope.resources()[key]``. An async connection (psycopg's
    ``AsyncConnection``) gives async performers (use ``run_async``)."""

    def connection_now() -> Any:
        return connection if connection is not None else resources()[key]

    def perform_query(effect: Query) -> Any:
        conn = connection_now()
        if _is_async(conn):
            return _query_async(conn, effect)
        cursor = conn.cursor()
        try:
            cursor.execute(effect.sql, effect.params)
            return _rows(cursor.description, cursor.fetchall())
        finally:
            cursor.close()

    def perform_execute(effect: Execute) -> Any:
        conn = connection_now()
        if _is_async(conn):
            return _execute_async(conn, effect)
        cursor = conn.cursor()
        try:
            cursor.execute(effect.sql, effect.params)
            return ExecResult(cursor.rowcount, _lastrowid(cursor))
        finally:
            cursor.close()

    return {Query: perform_query, Execute: perform_execute}


def _is_async(conn: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(conn, "commit", None))


async def _query_async(conn: Any, effect: Query) -> list[dict[str, Any]]:
    async with conn.cursor() as cursor:
        await cursor.execute(effect.sql, effect.params)
        return _rows(cursor.description, await cursor.fetchall())


async def _execute_async(conn: Any, effect: Execute) -> ExecResult:
    async with conn.cursor() as cursor:
        await cursor.execute(effect.sql, effect.params)
        return ExecResult(cursor.rowcount, _lastrowid(cursor))


def _rows(description: Any, rows: list[Any]) -> list[dict[str, Any]]:
    if description is None:
        return []
    names = [column[0] for column in description]
    return [dict(zip(names, row, strict=True)) for row in rows]


def _lastrowid(cursor: Any) -> int | None:
    value = getattr(cursor, "lastrowid", None)
    return value if isinstance(value, int) else None


def run_in_transaction(
    interpreter: Interpreter,
    fn: Callable[..., Any],
    input: Any,
    connection: Any,
    *,
    key: str = "db",
) -> Outcome:
    """Run ``fn`` with ``connection`` as ``resources()[key]``; commit on success, roll back on
    failure (the connection's own transaction: DB-API opens one implicitly)."""
    with resources_scope({key: connection}):
        outcome = interpreter.run(fn, input)
    (connection.commit if outcome.ok else connection.rollback)()
    return outcome


async def run_in_transaction_async(
    interpreter: Interpreter,
    fn: Callable[..., Any],
    input: Any,
    connection: Any,
    *,
    key: str = "db",
) -> Outcome:
    """:func:`run_in_transaction` for ``run_async`` (a sync or an async connection)."""
    with resources_scope({key: connection}):
        outcome = await interpreter.run_async(fn, input)
    done = connection.commit() if outcome.ok else connection.rollback()
    if inspect.isawaitable(done):
        await done
    return outcome
