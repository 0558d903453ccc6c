"""tenant-scoped foreign keys: a row names only rows of its own tenant

Revision ID: a7c3e9d1b4f2
Revises: 5c1f0e2a7d93
Create Date: 2026-12-01 21:00:00.000000+00:00

Every foreign key from a tenant's row to another tenant-owned row becomes
(column, tenant_id) -> parent (id, tenant_id), on a new unique (tenant_id, id) of each parent,
so the database refuses a task, member, order... that points at another tenant's store,
member or staff. Each key keeps its name. task_targets stays without keys to tasks and
members (20261201_5c1f0e2a7d93); its result_by key to staff is scoped like the others.
"""
from itertools import groupby

from alembic import op


revision = 'a7c3e9d1b4f2'
down_revision = '5c1f0e2a7d93'
branch_labels = None
depends_on = None

PARENTS = (
    "brands",
    "material_categories",
    "regions",
    "stores",
    "reply_categories",
    "staff",
    "tag_groups",
    "campaigns",
    "commission_rules",
    "commission_settlements",
    "members",
    "quick_replies",
    "scan_codes",
    "tags",
    "uploads",
    "commission_entries",
    "materials",
    "orders",
)
KEYS = (  # table, column, parent, ON DELETE
    ("material_categories", "parent_id", "material_categories", None),
    ("regions", "brand_id", "brands", None),
    ("stores", "brand_id", "brands", None),
    ("stores", "region_id", "regions", None),
    ("reply_categories", "store_id", "stores", None),
    ("staff", "store_id", "stores", None),
    ("store_tags", "store_id", "stores", None),
    ("tag_groups", "store_id", "stores", None),
    ("calendar_items", "created_by", "staff", None),
    ("campaigns", "created_by", "staff", None),
    ("commission_rules", "created_by", "staff", None),
    ("commission_settlements", "approved_by", "staff", None),
    ("commission_settlements", "closed_by", "staff", None),
    ("members", "guide_id", "staff", None),
    ("members", "merged_into_id", "members", None),
    ("members", "store_id", "stores", None),
    ("quick_replies", "category_id", "reply_categories", None),
    ("quick_replies", "created_by", "staff", None),
    ("quick_replies", "owner_staff_id", "staff", None),
    ("quick_replies", "owner_store_id", "stores", None),
    ("scan_codes", "created_by", "staff", None),
    ("scan_codes", "fallback_store_id", "stores", None),
    ("scan_codes", "guide_id", "staff", None),
    ("scan_codes", "store_id", "stores", None),
    ("sop_rules", "created_by", "staff", None),
    ("tags", "group_id", "tag_groups", None),
    ("tags", "store_id", "stores", None),
    ("task_targets", "result_by", "staff", None),
    ("uploads", "uploaded_by", "staff", None),
    ("bindings", "by_staff_id", "staff", None),
    ("bindings", "guide_id", "staff", None),
    ("bindings", "member_id", "members", None),
    ("bindings", "store_id", "stores", None),
    ("commission_entries", "guide_id", "staff", None),
    ("commission_entries", "member_id", "members", None),
    ("commission_entries", "reverses_id", "commission_entries", None),
    ("commission_entries", "rule_id", "commission_rules", None),
    ("commission_entries", "store_id", "stores", None),
    ("commission_recruits", "guide_id", "staff", None),
    ("commission_recruits", "member_id", "members", None),
    ("commission_recruits", "store_id", "stores", None),
    ("commission_statements", "settlement_id", "commission_settlements", None),
    ("commission_statements", "store_id", "stores", None),
    ("materials", "category_id", "material_categories", None),
    ("materials", "created_by", "staff", None),
    ("materials", "owner_staff_id", "staff", None),
    ("materials", "owner_store_id", "stores", None),
    ("materials", "upload_id", "uploads", None),
    ("member_identities", "member_id", "members", None),
    ("member_merges", "by_staff_id", "staff", None),
    ("member_merges", "merged_id", "members", None),
    ("member_merges", "survivor_id", "members", None),
    ("member_notes", "author_id", "staff", None),
    ("member_notes", "member_id", "members", None),
    ("member_tags", "member_id", "members", None),
    ("member_tags", "tag_id", "tags", None),
    ("member_tags", "tagged_by", "staff", None),
    ("orders", "guide_id", "staff", None),
    ("orders", "member_id", "members", None),
    ("orders", "store_id", "stores", None),
    ("points_entries", "member_id", "members", None),
    ("questionnaire_codes", "tag_id", "tags", None),
    ("quick_reply_tags", "reply_id", "quick_replies", 'CASCADE'),
    ("quick_reply_tags", "tag_id", "tags", None),
    ("scans", "code_id", "scan_codes", None),
    ("scans", "guide_id", "staff", None),
    ("scans", "member_id", "members", None),
    ("scans", "store_id", "stores", None),
    ("tasks", "assignee_id", "staff", None),
    ("tasks", "campaign_id", "campaigns", None),
    ("tasks", "completed_by", "staff", None),
    ("tasks", "created_by", "staff", None),
    ("tasks", "store_id", "stores", None),
    ("order_refunds", "order_id", "orders", None),
    ("shares", "material_id", "materials", None),
    ("shares", "member_id", "members", None),
    ("shares", "staff_id", "staff", None),
    ("shares", "store_id", "stores", None),
)


def _by_table():
    return groupby(sorted(KEYS), key=lambda key: key[0])


def upgrade() -> None:
    for table in PARENTS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_unique_constraint(f'uq_{table}_tenant_id_id', ['tenant_id', 'id'])
    for table, keys in _by_table():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _table, column, parent, ondelete in keys:
                name = f'fk_{table}_{column}_{parent}'
                batch_op.drop_constraint(name, type_='foreignkey')
                batch_op.create_foreign_key(
                    name, parent, [column, 'tenant_id'], ['id', 'tenant_id'], ondelete=ondelete
                )


def downgrade() -> None:
    for table, keys in _by_table():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _table, column, parent, ondelete in keys:
                name = f'fk_{table}_{column}_{parent}'
                batch_op.drop_constraint(name, type_='foreignkey')
                batch_op.create_foreign_key(name, parent, [column], ['id'], ondelete=ondelete)
    for table in reversed(PARENTS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'uq_{table}_tenant_id_id', type_='unique')
