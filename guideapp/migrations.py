"""Alembic configuration built from the app's settings (CLI, tests and /readyz share it)."""

import uuid
from contextlib import contextmanager
from typing import Iterator

from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, make_url, text

from guideapp.config import PROJECT_ROOT


def alembic_config(app_config, url: str | None = None) -> AlembicConfig:
    config = AlembicConfig(str(PROJECT_ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", (url or app_config["DATABASE_URL"]).replace("%", "%%"))
    return config


@contextmanager
def scratch_postgres_database(base_url: str, prefix: str) -> Iterator[str]:
    """CREATE DATABASE <prefix>_<random> beside base_url, yield its URL, drop it afterwards
    (tests and benchmarks each work on a brand-new database)."""
    base = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
