"""Every table of the migrated database is distributed by tenant_id, a reference table or a
local one (guideapp/distribution.py), and keeps the keys Citus needs for that."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from guideapp.distribution import (
    GLOBAL_KEYS,
    LOCAL,
    REFERENCE,
    SQLITE_ROWID_KEYS,
    citus_script,
    distributed,
)
from guideapp.models import metadata


@pytest.fixture(scope="module")
def schema(database):
    """The migrated database's tables, keys and indexes, as SQLAlchemy reflects them."""
    with database.engine.connect() as conn:
        found = inspect(conn)
        names = set(found.get_table_names()) - {"alembic_version"}
        tables = {
            name: {
                "columns": {c["name"]: c for c in found.get_columns(name)},
                "pk": found.get_pk_constraint(name)["constrained_columns"],
                "uniques": [
                    *(u["column_names"] for u in found.get_unique_constraints(name)),
                    *(i["column_names"] for i in found.get_indexes(name) if i["unique"]),
                ],
                "fks": found.get_foreign_keys(name),
            }
            for name in names
        }
    return database.backend, tables


def test_every_table_is_classified_once(schema):
    _backend, tables = schema
    assert not set(REFERENCE) & set(LOCAL)
    assert set(REFERENCE) | set(LOCAL) <= set(tables), "a classified table no longer exists"
    named = {table for table, _columns in GLOBAL_KEYS} | set(SQLITE_ROWID_KEYS)
    assert named <= distributed(tables), "an exception names a table that is not distributed"
    # The default is distributed: a new table without tenant_id must be classified.
    unclassified = sorted(t for t in distributed(tables) if "tenant_id" not in tables[t]["columns"])
    assert unclassified == []


def test_distributed_tables_hold_tenant_id_in_every_key(schema):
    backend, tables = schema
    wrong, used_exceptions = [], set()
    for name in sorted(distributed(tables)):
        table = tables[name]
        if table["columns"]["tenant_id"]["nullable"]:
            wrong.append(f"{name}.tenant_id is nullable")
        rowid = backend == "sqlite" and name in SQLITE_ROWID_KEYS
        if "tenant_id" not in table["pk"] and not rowid:
            wrong.append(f"{name} primary key {table['pk']}")
        for columns in table["uniques"]:
            if "tenant_id" in columns:
                continue
            if (name, tuple(columns)) in GLOBAL_KEYS:
                used_exceptions.add((name, tuple(columns)))
            else:
                wrong.append(f"{name} unique {columns}")
    assert wrong == []
    assert used_exceptions == set(GLOBAL_KEYS), "a global key exception is stale"


def test_no_unique_key_repeats_the_primary_key(schema):
    """UNIQUE(tenant_id, id) went when the primary key became (id, tenant_id)."""
    _backend, tables = schema
    repeated = [
        f"{name} {columns}"
        for name, table in sorted(tables.items())
        for columns in table["uniques"]
        if set(columns) == set(table["pk"])
    ]
    assert repeated == []


def test_keys_between_distributed_tables_carry_tenant_id_on_both_sides(schema):
    _backend, tables = schema
    spread = distributed(tables)
    unscoped = [
        f"{name}{fk['constrained_columns']} -> {fk['referred_table']}{fk['referred_columns']}"
        for name in sorted(spread)
        for fk in tables[name]["fks"]
        if fk["referred_table"] in spread
        and ("tenant_id", "tenant_id")
        not in zip(fk["constrained_columns"], fk["referred_columns"], strict=True)
    ]
    assert unscoped == []


def test_reference_tables_name_no_distributed_rows(schema):
    _backend, tables = schema
    spread = distributed(tables)
    keys = [
        f"{name} -> {fk['referred_table']}"
        for name in sorted(REFERENCE)
        for fk in tables[name]["fks"]
        if fk["referred_table"] in spread or fk["referred_table"] in LOCAL
    ]
    assert keys == []


def test_primary_keys_are_the_models(schema):
    """Alembic's autogenerate does not compare primary keys: this does. PostgreSQL's keys of
    the auto-incremented tables also hold tenant_id (the models say SQLite's)."""
    backend, tables = schema
    differ = []
    for table in metadata.sorted_tables:
        expected = [c.name for c in table.primary_key.columns]
        if backend == "postgres" and table.name in SQLITE_ROWID_KEYS:
            expected = [*expected, "tenant_id"]
        if tables[table.name]["pk"] != expected:
            differ.append(f"{table.name}: {tables[table.name]['pk']} != {expected}")
    assert differ == []


def test_citus_script_distributes_parents_before_the_tables_naming_them():
    script = citus_script(metadata)
    position = {line.split("'")[1]: n for n, line in enumerate(script)}
    assert set(position) == set(REFERENCE) | distributed(metadata.tables)
    late = [
        f"{table.name} before {fk.column.table.name}"
        for table in metadata.sorted_tables
        if table.name in position
        for fk in table.foreign_keys
        if position[fk.column.table.name] > position[table.name]
    ]
    assert late == []
