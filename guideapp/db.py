"""Declarative base, engines, sessions and the one place a transaction commits."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    declared_attr,
    mapped_column,
    sessionmaker,
)
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    """Opaque string ids (32 hex digits, 128 random bits): WatermelonDB clients create
    records with ids of their own. Not uuid4(): building the UUID object costs five times
    the random bytes, and an import makes several ids per row."""
    return os.urandom(16).hex()


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on the way in and out, on SQLite too (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; times are stored timezone-aware in UTC")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


# Marks the tenant_id column a table's primary key carries for distribution (Citus shards
# by it): part of the database's key, not of the ORM's identity (guideapp/distribution.py).
DISTRIBUTION_COLUMN = "distribution_column"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}

    @declared_attr.directive
    def __mapper_args__(cls) -> dict:
        """The ORM identifies a row by its key without tenant_id (session.get(Member, id)):
        ids are random and unique on their own. The table's primary key also holds
        tenant_id, so that a distributed table's keys include its distribution column;
        UPDATE and DELETE by key still name both."""
        key = list(cls.__table__.primary_key.columns)  # type: ignore[attr-defined]
        identity = [c for c in key if not c.info.get(DISTRIBUTION_COLUMN)]
        return {"primary_key": identity} if len(identity) < len(key) else {}


def tenant_column(*, references_tenants: bool = True) -> Mapped[str]:
    """tenant_id of a distributed table: its distribution column, last in its primary key
    (after id, so that lookups by id alone keep using the key's index). Parents of a
    tenant_fk are found through that key: (id, tenant_id) is unique because it is the key."""
    key = [ForeignKey("tenants.id")] if references_tenants else [String(32)]
    return mapped_column(*key, primary_key=True, info={DISTRIBUTION_COLUMN: True})


def tenant_fk(column: str, parent: str, **kwargs) -> ForeignKeyConstraint:
    """`column` names a row of `parent` of the same tenant, and the database says so:
    (column, tenant_id) -> parent (id, tenant_id). A NULL `column` names nothing."""
    return ForeignKeyConstraint(
        [column, "tenant_id"], [f"{parent}.id", f"{parent}.tenant_id"], **kwargs
    )


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)  # Chinese text stays searchable as text


def make_engine(url: str, *, slow_query_ms: float | None = None, **kwargs) -> Engine:
    kwargs.setdefault("json_serializer", _json)
    # An error's message names its statement, never its parameters (members' phones, names).
    kwargs.setdefault("hide_parameters", True)
    engine = create_engine(url, **kwargs)
    if slow_query_ms:
        _log_slow_queries(engine, slow_query_ms)
    if engine.dialect.name == "sqlite":
        _make_sqlite_transactional(engine)
    else:
        _ping_when_idle(engine)
    return engine


def _log_slow_queries(engine: Engine, threshold_ms: float) -> None:
    """A statement slower than the threshold is logged with its SQL and its time, never its
    parameters (they hold members' phones and names)."""
    import logging
    import time

    from guideapp.statements import SLOW_QUERY_LOGS

    log = logging.getLogger("guideapp.slow_query")

    def note(statement: str, elapsed_ms: float, _parameters=None) -> None:
        if elapsed_ms >= threshold_ms:  # values are never logged
            log.warning(
                "slow query",
                extra={"duration_ms": round(elapsed_ms, 1), "statement": statement[:2000]},
            )

    SLOW_QUERY_LOGS[engine.pool] = note  # statements run past SQLAlchemy (statements.py)

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):
        conn.info["query_started"] = time.perf_counter()  # a failed one is simply overwritten

    @event.listens_for(engine, "after_cursor_execute")
    def _finish(conn, cursor, statement, parameters, context, executemany):
        started = conn.info.pop("query_started", None)
        if started is not None:
            note(statement, (time.perf_counter() - started) * 1000)


PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection before use only when it sat idle for a while.

    pool_pre_ping would cost a round trip on every request; a connection in steady use is
    known good, and one that breaks mid-use is invalidated by SQLAlchemy and answers 503
    (errors.py). Raising DisconnectionError at checkout makes the pool connect afresh.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("pooled connection failed its ping") from error


def _make_sqlite_transactional(engine: Engine) -> None:
    """pysqlite's own BEGIN handling breaks SAVEPOINTs; let SQLAlchemy emit BEGIN itself.

    See SQLAlchemy's "Serializable isolation / Savepoints / Transactional DDL" notes
    for the pysqlite driver. Also switch foreign keys on and wait on a locked database.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # IMMEDIATE takes the write lock at once: two writers never deadlock upgrading locks.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine_or_connection, **kwargs) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_or_connection, expire_on_commit=False, **kwargs)


def make_autocommit_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose statements each commit on their own: for reads that need no shared
    snapshot, saving the BEGIN and COMMIT round trips. SQLite keeps its transactions."""
    if engine.dialect.name == "sqlite":
        return make_sessionmaker(engine)
    return make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


class greatest(FunctionElement):  # noqa: N801  (SQL function name)
    """GREATEST(a, b, ...) of non-NULL integers; SQLite spells it max(a, b, ...)."""

    type = BigInteger()
    name = "greatest"
    inherit_cache = True


@compiles(greatest)
def _greatest(element, compiler, **kw):
    return f"greatest({compiler.process(element.clauses, **kw)})"


@compiles(greatest, "sqlite")
def _greatest_sqlite(element, compiler, **kw):
    return f"max({compiler.process(element.clauses, **kw)})"


def upsert(session: Session, model):
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING / DO UPDATE on both databases."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def insert_ignoring_duplicates(session: Session, model, columns: list[str], rows) -> int:
    """INSERT ... SELECT ... ON CONFLICT DO NOTHING, for generated rows with unique keys."""
    stmt = upsert(session, model).from_select(columns, rows).on_conflict_do_nothing()
    return rowcount(session.execute(stmt, execution_options={"preserve_rowcount": True}))


def insert_from_select(session: Session, model, columns: list[str], rows) -> int:
    """INSERT ... SELECT for rows no other transaction can be writing (a duplicate raises)."""
    from sqlalchemy import insert

    stmt = insert(model).from_select(columns, rows)
    return rowcount(session.execute(stmt, execution_options={"preserve_rowcount": True}))


def rowcount(result) -> int:
    """Rows an INSERT/UPDATE/DELETE touched (a CursorResult; typed as Result by the ORM)."""
    return result.rowcount


def bulk_work_memory(session: Session, megabytes: int = 256) -> None:
    """Let this transaction's sorts and hashes of a fan-out stay in memory (PostgreSQL's
    default of 4 MB spills a 300,000-row sort to disk); reset at commit or rollback."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import text

        session.execute(text(f"SET LOCAL work_mem = '{int(megabytes)}MB'"))


def plus_days(session: Session, column, days: int):
    """`column + days` in SQL on both databases (SQLite keeps times as text)."""
    if session.get_bind().dialect.name == "sqlite":
        from sqlalchemy import func

        return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{int(days)} days")
    from sqlalchemy import text

    return column + text(f"interval '{int(days)} days'")


def local_date(session: Session, column, zone, start: datetime, end: datetime):
    """The local day ('YYYY-MM-DD') in `zone` (a ZoneInfo) of a UTC time `column`, to group
    by. PostgreSQL converts with its own zone data; SQLite knows no zones, so the offsets
    `zone` takes between `start` and `end` (daylight saving) become a CASE on the instants
    they change: exact for rows in that window."""
    from sqlalchemy import case, func, literal

    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(zone.key, column), "YYYY-MM-DD")
    changes = _offset_changes(zone, start, end)
    shifted = [func.date(column, f"{int(offset):+d} seconds") for _, offset in changes]
    if len(changes) == 1:
        return shifted[0]
    return case(
        *[
            (column < literal(at, UTCDateTime()), day)
            for (at, _), day in zip(changes[1:], shifted[:-1], strict=True)
        ],
        else_=shifted[-1],
    )


def _offset_changes(zone, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """[(from when, UTC offset in seconds)] of `zone` over [start, end): hourly samples, each
    change pinned by bisection."""
    from datetime import timedelta

    def offset(moment: datetime) -> float:
        return (moment.astimezone(zone).utcoffset() or timedelta()).total_seconds()

    changes = [(start, offset(start))]
    moment, step = start, timedelta(hours=1)
    while moment < end:
        later = moment + step
        if offset(later) != changes[-1][1]:
            low, high = moment, later
            while high - low > timedelta(microseconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == changes[-1][1] else (low, middle)
            changes.append((high, offset(high)))
        moment = later
    return changes


def any_of(session: Session, column, values):
    """`column IN (values)`; on PostgreSQL one bound array, `column = ANY(:values)`: a
    single parameter however many values (a sync push names up to 5,000 ids; an IN list
    that long costs six times the CPU to build, send and parse)."""
    from sqlalchemy import any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(column.type), unique=True))
    return column.in_(values)


def any_param(dialect: str, column, name: str):
    """`column = ANY(:name)` (one bound array) on PostgreSQL, an expanding `IN` elsewhere:
    any_of for a statements.Prebuilt statement, whose values come at execution."""
    from sqlalchemy import any_, bindparam
    from sqlalchemy.dialects.postgresql import ARRAY

    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def refresh_planner_statistics(session: Session, table) -> None:
    """After a bulk load, PostgreSQL's planner learns the table's new contents now rather
    than at autovacuum's next round: a never-analysed table of a million fresh coupons
    looks empty, and a till's `UPDATE ... WHERE tenant_id = ? AND id = ANY(?) AND state =
    ?` then walks an index of (tenant, state) instead of the primary key."""
    from sqlalchemy import text

    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"ANALYZE {table.name}"))


COPY_ROWS = 500  # from this many rows on, COPY beats one INSERT ... unnest (bench_import)


def insert_rows(session: Session, table, rows: list[dict]) -> None:
    """INSERT many rows of `table` (a Table): on PostgreSQL a COPY FROM STDIN for big
    batches, else `INSERT ... SELECT * FROM unnest(<one bound array per column>)`;
    elsewhere an executemany. Python-side column defaults are not applied: rows give every
    column they need (all rows the same columns)."""
    if not rows:
        return
    from sqlalchemy import insert, select

    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    if len(rows) >= COPY_ROWS:
        copy_rows(session, table, rows)
        return
    names = list(rows[0])
    source = unnest_columns(table, names, values={n: [row[n] for row in rows] for n in names})
    session.execute(insert(table).from_select(names, select(*[source.c[n] for n in names])))


def unnest_columns(table, names, *, values: dict | None = None, prefix: str = ""):
    """`unnest(<one bound array per column>) AS (names...)` (PostgreSQL), typed as `table`'s
    columns: rows as arrays, one parameter per column however many rows. With `values` the
    arrays are bound now; without, they are named `<prefix><column>` and come at execution
    (a statements.Prebuilt statement)."""
    from sqlalchemy import bindparam, column, func
    from sqlalchemy.dialects.postgresql import ARRAY

    arrays = [
        bindparam(None, values[n], type_=ARRAY(table.c[n].type), unique=True)
        if values is not None
        else bindparam(prefix + n, type_=ARRAY(table.c[n].type))
        for n in names
    ]
    return func.unnest(*arrays).table_valued(*[column(n) for n in names]).render_derived()


def upsert_rows(
    session: Session, table, rows: list[dict], *, keys: list[str], add: tuple[str, ...] = ()
) -> None:
    """INSERT rows of `table` ON CONFLICT (keys) DO NOTHING, or with `add`, DO UPDATE SET
    each `add` column to itself plus the new row's. One statement on PostgreSQL (the rows
    as bound arrays, unnest), batches of VALUES elsewhere."""
    if not rows:
        return
    from sqlalchemy import select

    def finish(stmt):
        if not add:
            return stmt.on_conflict_do_nothing(index_elements=keys)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={c: table.c[c] + stmt.excluded[c] for c in add}
        )

    if session.get_bind().dialect.name != "postgresql":
        for start in range(0, len(rows), 500):
            session.execute(finish(upsert(session, table).values(rows[start : start + 500])))
        return
    names = list(rows[0])
    source = unnest_columns(table, names, values={n: [row[n] for row in rows] for n in names})
    stmt = upsert(session, table).from_select(names, select(*[source.c[n] for n in names]))
    session.execute(finish(stmt))


def copy_rows(session: Session, table, rows: list[dict]) -> None:
    """PostgreSQL's COPY FROM STDIN into `table` on the session's connection, in its
    transaction: the server's fastest way in (a third of an executemany's time per row).

    Each value goes through its column type's bind processing for the dialect first, as in
    any INSERT (UTCDateTime refuses a naive time, JSON is wrapped for psycopg); constraints
    and triggers apply as they do to an INSERT."""
    session.flush()  # rows the ORM still holds go first, as an execute() would send them
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    processors = [(n, table.c[n].type.dialect_impl(dialect).bind_processor(dialect)) for n in names]
    quote = dialect.identifier_preparer
    statement = (
        f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)}) FROM STDIN"
    )
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row([p(row[n]) if p else row[n] for n, p in processors])


def commit(session: Session) -> None:
    """Commit a unit of work (the change log stamps itself on every commit: changelog/)."""
    session.commit()


@contextmanager
def transaction(session: Session) -> Iterator[Session]:
    """One use case, one commit: for CLI jobs and scripts (requests commit in web.py)."""
    try:
        yield session
        commit(session)
    except BaseException:
        session.rollback()
        raise
