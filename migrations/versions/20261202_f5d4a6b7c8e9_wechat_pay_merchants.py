"""wechat pay merchants: per tenant, with sealed APIv3 keys, platform keys and terminals
(guideapp/wechatpay, docs/wechat-pay.md)

Revision ID: f5d4a6b7c8e9
Revises: c2a1d3e4f5b6
Create Date: 2026-12-02 03:53:34.329340+00:00
"""
from alembic import op
import sqlalchemy as sa
import guideapp.db


revision = 'f5d4a6b7c8e9'
down_revision = 'c2a1d3e4f5b6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_pay_merchants',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('mchid', sa.String(length=32), nullable=False),
    sa.Column('appids', sa.JSON(), nullable=False),
    sa.Column('apiv3_key_sealed', sa.Text(), nullable=False),
    sa.Column('platform_keys', sa.JSON(), nullable=False),
    sa.Column('store_id', sa.String(length=32), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', guideapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', guideapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['store_id', 'tenant_id'], ['stores.id', 'stores.tenant_id'], name=op.f('fk_wechat_pay_merchants_store_id_stores')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_wechat_pay_merchants_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_pay_merchants')),
    sa.UniqueConstraint('tenant_id', 'id', name=op.f('uq_wechat_pay_merchants_tenant_id_id')),
    sa.UniqueConstraint('tenant_id', 'mchid', name=op.f('uq_wechat_pay_merchants_tenant_id_mchid'))
    )
    op.create_table('wechat_pay_terminals',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('merchant_id', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('store_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id', 'tenant_id'], ['wechat_pay_merchants.id', 'wechat_pay_merchants.tenant_id'], name=op.f('fk_wechat_pay_terminals_merchant_id_wechat_pay_merchants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['store_id', 'tenant_id'], ['stores.id', 'stores.tenant_id'], name=op.f('fk_wechat_pay_terminals_store_id_stores')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_wechat_pay_terminals_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_pay_terminals')),
    sa.UniqueConstraint('merchant_id', 'device_id', name=op.f('uq_wechat_pay_terminals_merchant_id_device_id'))
    )
    with op.batch_alter_table('wechat_pay_terminals', schema=None) as batch_op:
        batch_op.create_index('ix_wechat_pay_terminals_store_id', ['store_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('wechat_pay_terminals', schema=None) as batch_op:
        batch_op.drop_index('ix_wechat_pay_terminals_store_id')

    op.drop_table('wechat_pay_terminals')
    op.drop_table('wechat_pay_merchants')
