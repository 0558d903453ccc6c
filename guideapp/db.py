"""Declarative base, engines, sessions and the one place a transaction commits."""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
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
    """Opaque string ids: WatermelonDB clients create records with ids of their own."""
    return uuid.uuid4().hex


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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)  # Chinese text stays searchable as text


def make_engine(url: str, **kwargs) -> Engine:
    kwargs.setdefault("json_serializer", _json)
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        _make_sqlite_transactional(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


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


def insert_ignoring_duplicates(session: Session, model, columns: list[str], rows) -> int:
    """INSERT ... SELECT ... ON CONFLICT DO NOTHING, for generated rows with unique keys."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(model).from_select(columns, rows).on_conflict_do_nothing()
    return session.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount


def insert_from_select(session: Session, model, columns: list[str], rows) -> int:
    """INSERT ... SELECT for rows no other transaction can be writing (a duplicate raises)."""
    from sqlalchemy import insert

    stmt = insert(model).from_select(columns, rows)
    return session.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount


def plus_days(session: Session, column, days: int):
    """`column + days` in SQL on both databases (SQLite keeps times as text)."""
    if session.get_bind().dialect.name == "sqlite":
        from sqlalchemy import func

        return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{int(days)} days")
    from sqlalchemy import text

    return column + text(f"interval '{int(days)} days'")


def commit(session: Session) -> None:
    """Commit a unit of work: stamp its change-log entries with the commit-ordered sequence."""
    from guideapp.sync.changelog import stamp_pending_changes

    stamp_pending_changes(session)
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
