"""Statements built once and run on the DBAPI connection itself: the hot paths' way past
SQLAlchemy's per-execution bookkeeping (compile-cache lookup, events, result objects),
which costs more than the database's own work for a one-row read or write.

- `HotRead`: a SELECT on most requests (the login check); outside a transaction it runs on
  a pooled connection in autocommit: one round trip.
- `Prebuilt`: a statement for the hottest paths (a till's read and write, the change-log
  stamp, the inbox's counts), built once per (dialect, variant) and run on the session's
  connection; one marked `reads=True` runs in autocommit while the request has written
  nothing yet. `orm()` runs one of ORM entities through the session instead (lists
  kept by pagination.KeptPage), built once all the same.

On PostgreSQL both send the SQL that SQLAlchemy compiled, with every value through its
column type's bind processing and every result through its result processing, as a Core
execution would; prepared on the server (psycopg `prepare=True`), so each later run is a
bind and an execute. A driver error comes back as SQLAlchemy's DBAPIError, as from any
execution (errors.py answers 503 for a lost connection, which is invalidated). The
slow-query log (db.make_engine) sees these statements too (SLOW_QUERY_LOGS).
"""

from __future__ import annotations

import time
from collections import namedtuple
from functools import lru_cache
from contextlib import contextmanager, nullcontext
from typing import Any, Callable
from weakref import WeakKeyDictionary

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine, Result
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

# an engine's pool -> what logs a slow statement (its SQL, milliseconds, bound values), set by
# db.make_engine; by pool, which an engine's execution_options() copies share
SLOW_QUERY_LOGS: WeakKeyDictionary[Any, Callable[[str, float, Any], None]] = WeakKeyDictionary()


_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE: no transaction open on the connection


class Rows(list):
    """A statement's rows as tuples, with the names of their columns."""

    def __init__(self, rows, keys: list[str]):
        super().__init__(rows)
        self.keys = keys

    def mappings(self) -> list[dict]:
        return [dict(zip(self.keys, row, strict=True)) for row in self]

    def scalars(self) -> list:
        return [row[0] for row in self]

    def records(self) -> list:
        """Each row as a named tuple: its values by attribute, as an ORM object's (read
        only, outside the session; for rows that are shown, not changed)."""
        record = _record_type(tuple(self.keys))
        return [record._make(row) for row in self]

    def records_of(self, *parts: str) -> list[tuple]:
        """Each row as a named tuple per part, of the columns labelled `part__name`
        (record_columns(model, part)): a row of two models joined as two records."""
        picks = []
        for part in parts:
            at = [i for i, key in enumerate(self.keys) if key.startswith(f"{part}__")]
            names = tuple(self.keys[i][len(part) + 2 :] for i in at)
            picks.append((_record_type(names), at))
        return [tuple(kind._make([row[i] for i in at]) for kind, at in picks) for row in self]


@lru_cache(maxsize=256)
def _record_type(keys: tuple[str, ...]):
    return namedtuple("Record", keys)


def record_columns(model, part: str | None = None) -> list:
    """A mapped class's columns labelled by their attribute names (`part__name` given a
    part): selected through a Prebuilt, `Rows.records()` (`records_of(part, ...)`) reads
    like the model's objects."""
    prefix = f"{part}__" if part else ""
    return [getattr(model, a.key).label(f"{prefix}{a.key}") for a in sa_inspect(model).column_attrs]


class _Compiled:
    """A statement compiled for one dialect: its SQL, the values bound at build time, and
    the bind and result processing of its parameters' and columns' types."""

    def __init__(self, statement, dialect):
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.defaults = dict(compiled.params)
        self.order = list(compiled.positiontup or [])  # positional paramstyles (SQLite)
        self.binds = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
        }
        self.keys: list[str] | None = None  # from the first execution's description
        columns = list(getattr(statement, "exported_columns", []))
        self.results = [
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        ]

    def parameters(self, params: dict):
        values = {**self.defaults, **params}
        try:
            for name, process in self.binds.items():
                values[name] = process(values[name])
        except Exception as error:  # a refused value (a naive time), raised as Core raises it
            raise StatementError(str(error), self.sql, None, error, hide_parameters=True) from error
        return [values[name] for name in self.order] if self.order else values

    def rows(self, raw: list, keys: list[str]) -> Rows:
        processors = self.results if len(self.results) == len(keys) else []
        if any(processors):
            raw = [
                tuple(p(v) if p else v for p, v in zip(processors, row, strict=True)) for row in raw
            ]
        return Rows(raw, keys)


def _run(record, dialect, compiled: _Compiled, params: dict, *, invalidate, engine=None) -> Rows:
    """One execution on the DBAPI connection of `record` (a pooled connection); a lost
    connection is handed to `invalidate`, as SQLAlchemy would."""
    bound = compiled.parameters(params)
    started = time.perf_counter()
    cursor = None
    try:
        cursor = record.driver_connection.cursor()
        try:
            if dialect.name != "postgresql":
                cursor.execute(compiled.sql, bound)
            else:  # prepared on the server: each later run is a bind and an execute
                cursor.execute(compiled.sql, bound, prepare=True)
            if compiled.keys is None:  # a statement's columns never change
                compiled.keys = [column[0] for column in cursor.description or ()]
            raw = cursor.fetchall() if compiled.keys else []
        finally:
            cursor.close()
    except dialect.loaded_dbapi.Error as error:
        invalidated = dialect.is_disconnect(error, record.dbapi_connection, cursor)
        if invalidated:
            invalidate(error)
        raise DBAPIError.instance(
            compiled.sql,
            bound,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=invalidated,
        ) from error
    if engine is not None and (log := SLOW_QUERY_LOGS.get(engine.pool)):
        log(compiled.sql, (time.perf_counter() - started) * 1000, bound)
    return compiled.rows(raw, compiled.keys)


def _in_session(connection: Connection, compiled: _Compiled, params: dict, *, reads: bool):
    """Run in the session's transaction; a read (`reads`) before the transaction's first
    write runs in autocommit instead, as a GET's reads do (web.py): under READ COMMITTED
    it sees the same, and a request refused before it writes (a till's used coupon) then
    never began a transaction. Its ROLLBACK would have cost a round trip, and psycopg
    forgets every prepared statement of the connection at a ROLLBACK, so the next requests
    would prepare theirs again, a round trip each."""
    record = connection.connection
    driver = record.driver_connection
    idle = (
        reads
        and connection.dialect.name == "postgresql"
        and driver.info.transaction_status == _IDLE  # type: ignore[union-attr]
        and not driver.autocommit  # type: ignore[union-attr]
    )
    with _autocommit(driver) if idle else nullcontext():
        return _run(
            record,
            connection.dialect,
            compiled,
            params,
            invalidate=connection.invalidate,
            engine=connection.engine,
        )


@contextmanager
def _autocommit(driver):
    """psycopg sends no BEGIN while `autocommit` (set only while no transaction is open)."""
    driver.autocommit = True
    try:
        yield
    finally:
        if not driver.closed:
            driver.autocommit = False


class HotRead:
    """A SELECT run on most requests (the login check), compiled once per dialect. Given
    the Engine (a read outside any transaction) it runs on a pooled DBAPI connection in
    autocommit: one round trip. Given the request's Session it runs on its connection: in
    its transaction once that has written, else in autocommit (_in_session). Rows come
    back as plain tuples."""

    def __init__(self, statement):
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def first(self, source: Engine | Session, params: dict) -> tuple | None:
        if isinstance(source, Session):
            connection = source.connection()
            rows = _in_session(connection, self._for(connection.dialect), params, reads=True)
            return rows[0] if rows else None
        compiled = self._for(source.dialect)
        pooled = source.raw_connection()
        # psycopg would send BEGIN first; SQLite's driver connection already autocommits.
        toggle = source.dialect.name == "postgresql"
        try:
            with _autocommit(pooled.driver_connection) if toggle else nullcontext():
                rows = _run(
                    pooled,
                    source.dialect,
                    compiled,
                    params,
                    invalidate=pooled.invalidate,
                    engine=source,
                )
        finally:
            pooled.close()
        return rows[0] if rows else None

    def _for(self, dialect) -> _Compiled:
        if dialect.name not in self._compiled:
            self._compiled[dialect.name] = _Compiled(self.statement, dialect)
        return self._compiled[dialect.name]


class Prebuilt:
    """A statement built once per dialect and variant, every value a bound parameter, run
    in the session's transaction: no statement is built per request and no ORM or Core
    bookkeeping runs. Rows come back labelled as the builder labelled them (Rows).

    SQLite runs it as Core (an expanding IN needs SQLAlchemy to render it); it is the
    embedded database, not the one under load."""

    def __init__(self, build, *, reads: bool = False):
        self._build = build  # (dialect name, variant) -> statement
        self._built: dict[tuple, Any] = {}
        self.reads = reads  # a SELECT that locks nothing (see _in_session)

    def execute(self, session: Session, params: dict, variant=None) -> Rows:
        connection = session.connection()
        key = (connection.dialect.name, variant)
        built = self._built.get(key)
        if built is None:
            statement = self._build(*key)
            built = self._built[key] = (
                _Compiled(statement, connection.dialect) if key[0] == "postgresql" else statement
            )
        if isinstance(built, _Compiled):
            return _in_session(connection, built, params, reads=self.reads)
        result = connection.execute(built, params)
        return Rows([tuple(r) for r in result] if result.returns_rows else [], list(result.keys()))

    def orm(self, session: Session, params: dict, variant=None) -> Result:
        """The statement run through the ORM session, on every dialect, for one that loads
        entities (their identity map, loaded attributes): `.scalars()` as session.scalars
        would give. Kept, the statement is neither built again nor its cache key computed
        again: that is ~0.3 ms a statement, as much as the ORM's own execution."""
        dialect = session.get_bind().dialect.name
        key = ("orm", dialect, variant)
        statement = self._built.get(key)
        if statement is None:
            statement = self._built[key] = self._build(dialect, variant)
        return session.execute(statement, params)
