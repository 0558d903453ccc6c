"""wechat: per-tenant WeChat apps (secrets encrypted), the shared token cache, scan leads

Revision ID: c2a1d3e4f5b6
Revises: d3b2e4f5a6c7
Create Date: 2026-12-02 04:00:00.000000+00:00
"""
from alembic import op
import sqlalchemy as sa
import guideapp.db


revision = 'c2a1d3e4f5b6'
down_revision = 'd3b2e4f5a6c7'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_configs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('mp_appid', sa.String(length=32), nullable=True),
    sa.Column('mp_secret', sa.Text(), nullable=True),
    sa.Column('oa_appid', sa.String(length=32), nullable=True),
    sa.Column('oa_secret', sa.Text(), nullable=True),
    sa.Column('updated_by', sa.String(length=32), nullable=True),
    sa.Column('updated_at', guideapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_wechat_configs_tenant_id_tenants')),
    sa.ForeignKeyConstraint(['updated_by', 'tenant_id'], ['staff.id', 'staff.tenant_id'], name=op.f('fk_wechat_configs_updated_by_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_configs')),
    sa.UniqueConstraint('tenant_id', name=op.f('uq_wechat_configs_tenant_id'))
    )
    op.create_table('wechat_cache',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('expires_at', guideapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_wechat_cache'))
    )
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_phone', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_column('lead_phone')
    op.drop_table('wechat_cache')
    op.drop_table('wechat_configs')
