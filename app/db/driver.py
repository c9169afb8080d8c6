"""The hot path's statements, run on the session's own asyncpg connection.

Every customer message runs the same few Core statements (conversations.py). Through
SQLAlchemy's execution each costs ~130 µs of CPU on top of asyncpg's ~30 (its execution
context, parameter and result set-up, the greenlet hop to the driver and back): about a
tenth of a DM's CPU in the worker. A `DriverStatement` is the same statement compiled
once for the engine's dialect and sent by asyncpg itself, inside the session's
transaction, with SQLAlchemy's own type processing, statement events and error handling:
a disconnect still invalidates the pool, an error still arrives as `sqlalchemy.exc`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util.concurrency import greenlet_spawn

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    compiled: SQLCompiler
    sql: str
    names: tuple[str, ...]
    binds: tuple[Processor | None, ...]
    keys: tuple[str, ...]
    results: tuple[Processor | None, ...]
    plain_rows: bool  # no result column needs converting: the driver's rows as they are


class DriverRow(dict[str, Any]):
    """A row by column label, as `row["created"]`."""


class DriverStatement:
    """A Core statement sent by the driver of the session it runs in. Refused at first
    use: parameters rendered at execution (IN lists) and defaults computed in Python
    (SQLAlchemy's execution fills those in; give the values). Result columns whose
    conversion needs the driver's type code (Numeric, Float) fail then too."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[int, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        known = self._by_dialect.get(id(dialect))
        if known is not None:
            return known
        compiled = self.statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
            raise TypeError("a driver statement must compile to positional SQL")
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise TypeError("a driver statement must not render parameters at execution")
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise TypeError("a driver statement's columns must not take defaults from Python")
        # A tuple parameter's processors come as a sequence: no such parameter here.
        processors = cast(Mapping[str, Processor], compiled._bind_processors)
        names = tuple(compiled.positiontup)
        columns = compiled._result_columns
        results = tuple(column.type._cached_result_processor(dialect, None) for column in columns)
        made = _Compiled(
            compiled=compiled,
            sql=compiled.string,
            names=names,
            binds=tuple(processors.get(name) for name in names),
            keys=tuple(column.keyname for column in columns),
            results=results,
            plain_rows=all(processor is None for processor in results),
        )
        self._by_dialect[id(dialect)] = made
        return made

    async def rows(self, session: AsyncSession, params: Mapping[str, Any]) -> list[DriverRow]:
        """The statement's rows, run in the session's transaction (begun if need be)."""
        connection = _sync(await session.connection())
        made = self._compiled(connection.dialect)
        # Unescaped: the names `positiontup` and the processors go by.
        values = made.compiled.construct_params(dict(params), escape_names=False)
        arguments = tuple(
            value if bind is None else bind(value)
            for bind, value in zip(made.binds, (values[name] for name in made.names), strict=True)
        )
        sql = made.sql
        if connection._has_events or connection.engine._has_events:
            for listener in connection.dispatch.before_cursor_execute:
                sql, arguments = listener(connection, None, sql, arguments, None, False)
        adapted = connection.connection.dbapi_connection
        try:
            records = await _fetch(adapted, sql, arguments)
        except BaseException as error:
            # SQLAlchemy's own handling: the error wrapped in sqlalchemy.exc's; a lost
            # connection invalidated with the pool's older ones; a statement cancelled
            # midway (its task cancelled) leaves its connection invalidated, not lent again
            # in an unknown state.
            await greenlet_spawn(_handle, connection, error, sql, arguments)
            raise
        if made.plain_rows:
            return [DriverRow(zip(made.keys, record, strict=True)) for record in records]
        return [
            DriverRow(
                (key, value if result is None else result(value))
                for key, result, value in zip(made.keys, made.results, record, strict=True)
            )
            for record in records
        ]

    async def one_or_none(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> DriverRow | None:
        found = await self.rows(session, params)
        if len(found) > 1:
            raise ValueError("the statement returned more than one row")
        return found[0] if found else None

    async def scalar_one(self, session: AsyncSession, params: Mapping[str, Any]) -> Any:
        """The first column of the one row the statement returns."""
        found = await self.rows(session, params)
        if len(found) != 1:
            raise ValueError(f"the statement returned {len(found)} rows, not one")
        return next(iter(found[0].values()))

    async def execute(self, session: AsyncSession, params: Mapping[str, Any]) -> None:
        await self.rows(session, params)


async def _fetch(adapted: Any, sql: str, arguments: Sequence[Any]) -> list[Any]:
    """As SQLAlchemy's asyncpg adapter runs a statement: one at a time on the connection,
    in the transaction it begins on first use (unless the connection is in autocommit)."""
    async with adapted._execute_mutex:
        if adapted._transaction is None:
            await adapted._start_transaction()  # raises its errors translated
        try:
            return list(await adapted._connection.fetch(sql, *arguments))
        except Exception as error:
            adapted._handle_exception(error)  # raises it translated, as the DBAPI's
            raise


def _handle(connection: Connection, error: BaseException, sql: str, arguments: Any) -> None:
    """`Connection._handle_dbapi_exception`, which re-raises the exception being handled:
    run where one is (the greenlet starts without)."""
    try:
        raise error
    except BaseException as raised:
        connection._handle_dbapi_exception(raised, sql, arguments, None, None)


def _sync(connection: AsyncConnection) -> Connection:
    sync = connection.sync_connection
    if sync is None:
        raise RuntimeError("the session's connection is closed")
    return sync
