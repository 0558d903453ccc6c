"""Which tables Citus distributes by tenant_id, which it replicates, which stay local.

One tenant's rows live on one node: every distributed table is sharded by tenant_id, all
in one co-location group, so a request's joins and its one transaction stay on one node
(docs/distribution.md). The rules a distributed table
must keep (tests/test_distribution.py checks them on the migrated database):

- tenant_id NOT NULL, in its primary key and in every unique constraint and unique index
  (Citus enforces uniqueness per shard only), except the GLOBAL_KEYS below;
- every foreign key to another distributed table carries tenant_id on both sides.

Reference tables are copied to every node; they may not point at distributed rows.
Local tables stay on the coordinator: no tenant's data, nothing joins them to tenant rows.

The ORM identifies rows by id alone (guideapp/db.py, Base.__mapper_args__); the database's
primary key is (id, tenant_id), id first so that lookups by id keep their index. Two tables
number their rows with an auto-increment, which SQLite only gives a single INTEGER PRIMARY
KEY: their key holds tenant_id on PostgreSQL only (SQLITE_ROWID_KEYS).
"""

from __future__ import annotations

REFERENCE = {
    "tenants": "every tenant's row is named by every other table; a few hundred rows",
    "wechat_configs": "a WeChat callback or login names an appid before the tenant is known; "
    "one row per tenant",
    "wecom_configs": "a WeCom callback names its corp before the tenant is known; one row "
    "per tenant",
}

LOCAL = {
    "login_attempts": "counted per phone and client address before anyone is logged in: "
    "no tenant, kept for minutes",
    "scan_rate_windows": "per-code and per-address hit counters of the public scan page, "
    "kept for one window",
    "wechat_cache": "WeChat access tokens and tickets keyed by appid: a cache, no tenant rows",
    "idempotent_requests": "first responses keyed by the caller (a staff id, or anon:<address> "
    "for the public pages, with no tenant), kept for a day",
}

# Unique keys a distributed table keeps without tenant_id: each names the tenant before the
# tenant is known, so unique within a tenant would not do. On Citus each needs a reference
# "directory" table (key -> tenant_id) written in the same transaction (docs/distribution.md).
GLOBAL_KEYS = {
    ("staff", ("phone",)): "a login names a phone, not a tenant: one person per phone",
    ("scan_codes", ("code",)): "the public /s/<code> URL names a code, not a tenant",
}

# Auto-increment ids (SQLite's INTEGER PRIMARY KEY): tenant_id joins their key on PostgreSQL
# only; the embedded SQLite database is never distributed.
SQLITE_ROWID_KEYS = {
    "change_log": "the change log's commit-ordered id",
    "sync_rejections": "numbered as they come",
}


def distributed(table_names) -> set[str]:
    """Every table that is neither a reference nor a local table: the default."""
    return set(table_names) - set(REFERENCE) - set(LOCAL)


def citus_script(metadata) -> list[str]:
    """The statements that distribute a migrated database on Citus, in an order Citus
    accepts: reference tables first, then the distributed tables parents first (a foreign
    key may only name a table already distributed), each co-located with the first.
    Local tables need nothing: they stay on the coordinator."""
    tables = [t.name for t in metadata.sorted_tables]
    script = [f"SELECT create_reference_table('{name}');" for name in tables if name in REFERENCE]
    spread = [name for name in tables if name in distributed(tables)]
    for name in spread:
        colocated = "'none'" if name == spread[0] else f"'{spread[0]}'"
        script.append(
            f"SELECT create_distributed_table('{name}', 'tenant_id', colocate_with => {colocated});"
        )
    return script
