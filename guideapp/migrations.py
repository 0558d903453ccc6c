"""Alembic configuration built from the app's settings (CLI, tests and /readyz share it)."""

from alembic.config import Config as AlembicConfig

from guideapp.config import PROJECT_ROOT


def alembic_config(app_config, url: str | None = None) -> AlembicConfig:
    config = AlembicConfig(str(PROJECT_ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", (url or app_config["DATABASE_URL"]).replace("%", "%%"))
    return config
