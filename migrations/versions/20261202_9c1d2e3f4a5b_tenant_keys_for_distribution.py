"""tenant keys for distribution: every key of a tenant's table holds tenant_id

Revision ID: 9c1d2e3f4a5b
Revises: d4e5f6a7b8c9
Create Date: 2026-12-02 18:00:00.000000+00:00

So that Citus can shard every tenant table by tenant_id (guideapp/distribution.py,
docs/distribution.md):

- material_audiences, scan_guide_rotations, import_keys and auth_sessions get tenant_id,
  copied from the row they belong to, and their keys to it carry it (column, tenant_id);
- every primary key gets tenant_id last: PK(id) becomes PK(id, tenant_id), id first so
  that lookups by id alone keep their index. change_log and sync_rejections get it on
  PostgreSQL only: SQLite auto-increments only a single INTEGER PRIMARY KEY;
- UNIQUE(tenant_id, id), which the keys between tenant rows pointed at, goes: the primary
  key is now that unique key. Those keys are dropped first and re-created on it;
- unique constraints without tenant_id get it last (the same leading columns, so the
  same lookups use them). staff.phone and scan_codes.code stay globally unique (they name
  the tenant before it is known); wechat_configs and wecom_configs become reference tables,
  so their keys from updated_by to staff go (Citus refuses keys from a reference table to
  a distributed one; updated_by stays as a plain note).
"""
from itertools import groupby

from alembic import op
import sqlalchemy as sa


revision = '9c1d2e3f4a5b'
down_revision = 'd4e5f6a7b8c9'
branch_labels = None
depends_on = None

ROWID_KEYS = ('change_log', 'sync_rejections')  # PostgreSQL only
GAIN_TENANT_ID = (  # table, column, the row it belongs to, ON DELETE
    ('material_audiences', 'material_id', 'materials', None),
    ('scan_guide_rotations', 'store_id', 'stores', None),
    ('import_keys', 'job_id', 'jobs', 'CASCADE'),
    ('auth_sessions', 'staff_id', 'staff', None),
)
REFERENCE_KEYS_DROPPED = (('wechat_configs', 'updated_by'), ('wecom_configs', 'updated_by'))
UNIQUES = (  # table, columns before (tenant_id is appended)
    ('staff_wechat', ('staff_id', 'appid')),
    ('tags', ('group_id', 'name')),
    ('task_targets', ('task_id', 'member_id')),
    ('wechat_pay_terminals', ('merchant_id', 'device_id')),
    ('member_tags', ('member_id', 'tag_id')),
    ('order_refunds', ('order_id', 'refund_no')),
    ('wechat_mp_codes', ('appid', 'scene', 'page')),
    ('auth_sessions', ('refresh_token_hash',)),
)
KEYS = (  # table, primary key before (tenant_id is appended)
    ('change_log', ('id',)),
    ('sync_rejections', ('id',)),
    ('brands', ('id',)),
    ('material_categories', ('id',)),
    ('scheduler_runs', ('id',)),
    ('wechat_mp_codes', ('id',)),
    ('wecom_events', ('id',)),
    ('regions', ('id',)),
    ('stores', ('id',)),
    ('reply_categories', ('id',)),
    ('scan_guide_rotations', ('store_id',)),
    ('staff', ('id',)),
    ('store_tags', ('store_id', 'tag')),
    ('tag_groups', ('id',)),
    ('wechat_pay_merchants', ('id',)),
    ('audit_entries', ('id',)),
    ('auth_sessions', ('id',)),
    ('calendar_items', ('id',)),
    ('campaigns', ('id',)),
    ('commission_rules', ('id',)),
    ('commission_settlements', ('id',)),
    ('coupon_templates', ('id',)),
    ('jobs', ('id',)),
    ('members', ('id',)),
    ('quick_replies', ('id',)),
    ('sop_rules', ('id',)),
    ('staff_wechat', ('id',)),
    ('tags', ('id',)),
    ('task_targets', ('id',)),
    ('uploads', ('id',)),
    ('wechat_pay_terminals', ('id',)),
    ('bindings', ('id',)),
    ('commission_entries', ('id',)),
    ('commission_recruits', ('id',)),
    ('commission_statements', ('settlement_id', 'level', 'subject_id')),
    ('coupon_rules', ('id',)),
    ('coupons', ('id',)),
    ('import_keys', ('job_id', 'key')),
    ('materials', ('id',)),
    ('member_identities', ('id',)),
    ('member_merges', ('id',)),
    ('member_notes', ('id',)),
    ('member_tags', ('id',)),
    ('orders', ('id',)),
    ('points_entries', ('id',)),
    ('questionnaire_codes', ('id',)),
    ('quick_reply_tags', ('reply_id', 'tag_id')),
    ('scan_codes', ('id',)),
    ('tasks', ('id',)),
    ('wecom_alerts', ('id',)),
    ('coupon_redemptions', ('id',)),
    ('material_audiences', ('material_id', 'scope')),
    ('order_refunds', ('id',)),
    ('scans', ('id',)),
    ('shares', ('id',)),
    ('wecom_contact_ways', ('id',)),
    ('wecom_way_rules', ('id',)),
    ('wecom_welcomes', ('id',)),
    ('wecom_contacts', ('id',)),
    ('wecom_transfers', ('id',)),
)
TENANT_KEYS = (  # tables whose UNIQUE(tenant_id, id) goes
    'brands',
    'material_categories',
    'wecom_events',
    'regions',
    'stores',
    'reply_categories',
    'staff',
    'tag_groups',
    'wechat_pay_merchants',
    'campaigns',
    'commission_rules',
    'commission_settlements',
    'coupon_templates',
    'members',
    'quick_replies',
    'tags',
    'uploads',
    'commission_entries',
    'coupon_rules',
    'coupons',
    'materials',
    'orders',
    'scan_codes',
    'coupon_redemptions',
    'wecom_contact_ways',
    'wecom_way_rules',
    'wecom_welcomes',
    'wecom_contacts',
    'wecom_transfers',
)
KEYS_BETWEEN_TENANT_ROWS = (  # (column, tenant_id) -> parent (id, tenant_id), after this revision
    ('material_categories', 'parent_id', 'material_categories', None),
    ('regions', 'brand_id', 'brands', None),
    ('stores', 'region_id', 'regions', None),
    ('stores', 'brand_id', 'brands', None),
    ('reply_categories', 'store_id', 'stores', None),
    ('scan_guide_rotations', 'store_id', 'stores', None),
    ('staff', 'store_id', 'stores', None),
    ('store_tags', 'store_id', 'stores', None),
    ('tag_groups', 'store_id', 'stores', None),
    ('wechat_pay_merchants', 'store_id', 'stores', None),
    ('audit_entries', 'staff_id', 'staff', None),
    ('auth_sessions', 'staff_id', 'staff', None),
    ('calendar_items', 'created_by', 'staff', None),
    ('campaigns', 'created_by', 'staff', None),
    ('commission_month_counts', 'guide_id', 'staff', None),
    ('commission_rules', 'created_by', 'staff', None),
    ('commission_settlements', 'approved_by', 'staff', None),
    ('commission_settlements', 'closed_by', 'staff', None),
    ('coupon_templates', 'created_by', 'staff', None),
    ('coupon_templates', 'store_id', 'stores', None),
    ('jobs', 'started_by', 'staff', None),
    ('jobs', 'store_id', 'stores', None),
    ('members', 'store_id', 'stores', None),
    ('members', 'guide_id', 'staff', None),
    ('members', 'merged_into_id', 'members', None),
    ('quick_replies', 'owner_store_id', 'stores', None),
    ('quick_replies', 'owner_staff_id', 'staff', None),
    ('quick_replies', 'created_by', 'staff', None),
    ('quick_replies', 'category_id', 'reply_categories', None),
    ('sop_rules', 'created_by', 'staff', None),
    ('staff_wechat', 'staff_id', 'staff', None),
    ('tags', 'group_id', 'tag_groups', None),
    ('tags', 'store_id', 'stores', None),
    ('task_targets', 'result_by', 'staff', None),
    ('uploads', 'uploaded_by', 'staff', None),
    ('wechat_pay_terminals', 'store_id', 'stores', None),
    ('wechat_pay_terminals', 'merchant_id', 'wechat_pay_merchants', 'CASCADE'),
    ('bindings', 'member_id', 'members', None),
    ('bindings', 'store_id', 'stores', None),
    ('bindings', 'by_staff_id', 'staff', None),
    ('bindings', 'guide_id', 'staff', None),
    ('commission_entries', 'rule_id', 'commission_rules', None),
    ('commission_entries', 'reverses_id', 'commission_entries', None),
    ('commission_entries', 'guide_id', 'staff', None),
    ('commission_entries', 'member_id', 'members', None),
    ('commission_entries', 'store_id', 'stores', None),
    ('commission_recruits', 'member_id', 'members', None),
    ('commission_recruits', 'guide_id', 'staff', None),
    ('commission_recruits', 'store_id', 'stores', None),
    ('commission_statements', 'settlement_id', 'commission_settlements', None),
    ('commission_statements', 'store_id', 'stores', None),
    ('coupon_rules', 'template_id', 'coupon_templates', None),
    ('coupon_rules', 'created_by', 'staff', None),
    ('coupons', 'member_id', 'members', None),
    ('coupons', 'store_id', 'stores', None),
    ('coupons', 'issued_by', 'staff', None),
    ('coupons', 'template_id', 'coupon_templates', None),
    ('import_keys', 'job_id', 'jobs', 'CASCADE'),
    ('materials', 'category_id', 'material_categories', None),
    ('materials', 'owner_store_id', 'stores', None),
    ('materials', 'owner_staff_id', 'staff', None),
    ('materials', 'created_by', 'staff', None),
    ('materials', 'upload_id', 'uploads', None),
    ('member_identities', 'member_id', 'members', None),
    ('member_merges', 'merged_id', 'members', None),
    ('member_merges', 'survivor_id', 'members', None),
    ('member_merges', 'by_staff_id', 'staff', None),
    ('member_notes', 'author_id', 'staff', None),
    ('member_notes', 'member_id', 'members', None),
    ('member_tags', 'member_id', 'members', None),
    ('member_tags', 'tagged_by', 'staff', None),
    ('member_tags', 'tag_id', 'tags', None),
    ('orders', 'member_id', 'members', None),
    ('orders', 'store_id', 'stores', None),
    ('orders', 'guide_id', 'staff', None),
    ('points_entries', 'member_id', 'members', None),
    ('questionnaire_codes', 'tag_id', 'tags', None),
    ('quick_reply_tags', 'tag_id', 'tags', None),
    ('quick_reply_tags', 'reply_id', 'quick_replies', 'CASCADE'),
    ('scan_codes', 'created_by', 'staff', None),
    ('scan_codes', 'guide_id', 'staff', None),
    ('scan_codes', 'coupon_template_id', 'coupon_templates', None),
    ('scan_codes', 'fallback_store_id', 'stores', None),
    ('scan_codes', 'store_id', 'stores', None),
    ('tasks', 'created_by', 'staff', None),
    ('tasks', 'completed_by', 'staff', None),
    ('tasks', 'assignee_id', 'staff', None),
    ('tasks', 'campaign_id', 'campaigns', None),
    ('tasks', 'store_id', 'stores', None),
    ('wecom_alerts', 'event_id', 'wecom_events', None),
    ('wecom_alerts', 'member_id', 'members', None),
    ('wecom_alerts', 'store_id', 'stores', None),
    ('wecom_alerts', 'guide_id', 'staff', None),
    ('coupon_redemptions', 'redeemed_by', 'staff', None),
    ('coupon_redemptions', 'order_id', 'orders', None),
    ('coupon_redemptions', 'coupon_id', 'coupons', None),
    ('coupon_redemptions', 'store_id', 'stores', None),
    ('material_audiences', 'material_id', 'materials', None),
    ('order_refunds', 'order_id', 'orders', None),
    ('scans', 'store_id', 'stores', None),
    ('scans', 'code_id', 'scan_codes', None),
    ('scans', 'guide_id', 'staff', None),
    ('scans', 'member_id', 'members', None),
    ('shares', 'material_id', 'materials', None),
    ('shares', 'member_id', 'members', None),
    ('shares', 'staff_id', 'staff', None),
    ('shares', 'store_id', 'stores', None),
    ('wecom_contact_ways', 'code_id', 'scan_codes', None),
    ('wecom_contact_ways', 'guide_id', 'staff', None),
    ('wecom_way_rules', 'code_id', 'scan_codes', None),
    ('wecom_way_rules', 'backup_guide_id', 'staff', None),
    ('wecom_way_rules', 'updated_by', 'staff', None),
    ('wecom_welcomes', 'updated_by', 'staff', None),
    ('wecom_welcomes', 'code_id', 'scan_codes', None),
    ('wecom_welcomes', 'material_id', 'materials', None),
    ('wecom_contacts', 'member_id', 'members', None),
    ('wecom_contacts', 'contact_way_id', 'wecom_contact_ways', None),
    ('wecom_contacts', 'guide_id', 'staff', None),
    ('wecom_transfers', 'from_store_id', 'stores', None),
    ('wecom_transfers', 'contact_id', 'wecom_contacts', None),
    ('wecom_transfers', 'from_guide_id', 'staff', None),
    ('wecom_transfers', 'to_guide_id', 'staff', None),
    ('wecom_transfers', 'by_staff_id', 'staff', None),
    ('wecom_transfers', 'member_id', 'members', None),
    ('wecom_transfers', 'to_store_id', 'stores', None),
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def _keyed(table: str) -> bool:
    return _postgresql() or table not in ROWID_KEYS


def _name(table: str, column: str, parent: str) -> str:
    return f'fk_{table}_{column}_{parent}'


def _uq(table: str, columns) -> str:
    return f"uq_{table}_{'_'.join(columns)}"


def _keys_by_table(keys):
    return groupby(sorted(keys, key=lambda key: key[0]), key=lambda key: key[0])


def _drop_keys(keys) -> None:
    for table, group in _keys_by_table(keys):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _table, column, parent, _ondelete in group:
                batch_op.drop_constraint(_name(table, column, parent), type_='foreignkey')


def _create_keys(keys) -> None:
    for table, group in _keys_by_table(keys):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _table, column, parent, ondelete in group:
                batch_op.create_foreign_key(
                    _name(table, column, parent),
                    parent,
                    [column, 'tenant_id'],
                    ['id', 'tenant_id'],
                    ondelete=ondelete,
                )


def _new_tenant_keys():
    gained = {table for table, *_ in GAIN_TENANT_ID}
    return [key for key in KEYS_BETWEEN_TENANT_ROWS if key[0] not in gained]


def _set_keys(*, widened: bool) -> None:
    """Each table's primary key and unique keys, with tenant_id (widened) or as before."""
    uniques = dict(UNIQUES)
    for table, before in KEYS:
        if not _keyed(table):
            continue
        after = (*before, 'tenant_id')
        with op.batch_alter_table(table, schema=None) as batch_op:
            if widened and table in TENANT_KEYS:
                batch_op.drop_constraint(f'uq_{table}_tenant_id_id', type_='unique')
            batch_op.drop_constraint(f'pk_{table}', type_='primary')
            batch_op.create_primary_key(f'pk_{table}', list(after if widened else before))
            if not widened and table in TENANT_KEYS:
                batch_op.create_unique_constraint(f'uq_{table}_tenant_id_id', ['tenant_id', 'id'])
            if table in uniques:
                old, new = uniques[table], (*uniques[table], 'tenant_id')
                drop, make = (old, new) if widened else (new, old)
                batch_op.drop_constraint(_uq(table, drop), type_='unique')
                batch_op.create_unique_constraint(_uq(table, make), list(make))


def upgrade() -> None:
    for table, column, parent, _ondelete in GAIN_TENANT_ID:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('tenant_id', sa.String(length=32), nullable=True))
        op.execute(
            f'UPDATE {table} SET tenant_id = '
            f'(SELECT {parent}.tenant_id FROM {parent} WHERE {parent}.id = {table}.{column})'
        )
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('tenant_id', existing_type=sa.String(length=32), nullable=False)
            batch_op.drop_constraint(_name(table, column, parent), type_='foreignkey')
            batch_op.create_foreign_key(
                _name(table, 'tenant_id', 'tenants'), 'tenants', ['tenant_id'], ['id']
            )
    for table, column in REFERENCE_KEYS_DROPPED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(_name(table, column, 'staff'), type_='foreignkey')
    _drop_keys(_new_tenant_keys())  # they lean on UNIQUE(tenant_id, id), which goes
    _set_keys(widened=True)
    _create_keys(KEYS_BETWEEN_TENANT_ROWS)


def downgrade() -> None:
    _drop_keys(KEYS_BETWEEN_TENANT_ROWS)
    _set_keys(widened=False)
    _create_keys(_new_tenant_keys())
    for table, column in REFERENCE_KEYS_DROPPED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                _name(table, column, 'staff'),
                'staff',
                [column, 'tenant_id'],
                ['id', 'tenant_id'],
            )
    for table, column, parent, ondelete in GAIN_TENANT_ID:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(_name(table, 'tenant_id', 'tenants'), type_='foreignkey')
            batch_op.drop_column('tenant_id')
            batch_op.create_foreign_key(
                _name(table, column, parent), parent, [column], ['id'], ondelete=ondelete
            )
