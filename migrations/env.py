"""Alembic environment: the models' metadata, batch mode for SQLite."""

from alembic import context

from guideapp.config import Config
from guideapp.db import make_engine
from guideapp.models import metadata

config = context.config


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Config().DATABASE_URL


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=True,  # SQLite alters tables by copying them
        **kwargs,
    )


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # tests hand in their own connection
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # batch mode drops and copies tables that others refer to
            _sqlite_foreign_keys(connection, on=False)
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("the migration left rows whose foreign keys point nowhere")
        if sqlite:
            _sqlite_foreign_keys(connection, on=True)
    engine.dispose()


def _sqlite_foreign_keys(connection, *, on: bool) -> None:
    """SQLite ignores this PRAGMA inside a transaction: set it on the driver's connection
    before SQLAlchemy begins one."""
    connection.connection.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
