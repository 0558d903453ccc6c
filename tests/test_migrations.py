"""Alembic: one head; upgrading an empty database gives exactly the models; downgrade works."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from guideapp.db import make_engine
from guideapp.migrations import alembic_config
from guideapp.models import metadata
from tests.databases import backends, scratch_database


def test_single_head():
    heads = ScriptDirectory.from_config(alembic_config({}, url="sqlite://")).get_heads()
    assert len(heads) == 1, f"several heads: {heads}; merge them"


@pytest.mark.parametrize("backend", backends())
def test_upgrade_matches_models_and_downgrade_empties(backend, tmp_path_factory):
    with scratch_database(backend, tmp_path_factory) as url:
        config = alembic_config({}, url=url)
        command.upgrade(config, "head")
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                diff = compare_metadata(
                    MigrationContext.configure(conn, opts={"compare_type": True}), metadata
                )
            assert diff == [], f"models and migrations differ: {diff}"
            command.downgrade(config, "base")
            with engine.connect() as conn:
                assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
            command.upgrade(config, "head")  # and back up again from base
        finally:
            engine.dispose()
