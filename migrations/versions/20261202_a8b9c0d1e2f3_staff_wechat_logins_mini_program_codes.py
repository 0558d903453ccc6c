"""staff wechat logins (auth.staff_wechat), mini-program codes kept once (wechat_mp_codes),
the page they open (wechat_configs.mp_code_page), one brand per mini-program appid

Revision ID: a8b9c0d1e2f3
Revises: f5d4a6b7c8e9
Create Date: 2026-12-02 04:15:11.837804+00:00
"""
from alembic import op
import sqlalchemy as sa
import guideapp.db


revision = 'a8b9c0d1e2f3'
down_revision = 'f5d4a6b7c8e9'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wechat_mp_codes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('appid', sa.String(length=32), nullable=False),
    sa.Column('scene', sa.String(length=32), nullable=False),
    sa.Column('page', sa.String(length=128), nullable=False),
    sa.Column('storage_key', sa.String(length=200), nullable=False),
    sa.Column('mimetype', sa.String(length=40), nullable=False),
    sa.Column('created_at', guideapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_wechat_mp_codes_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wechat_mp_codes')),
    sa.UniqueConstraint('appid', 'scene', 'page', name=op.f('uq_wechat_mp_codes_appid_scene_page'))
    )
    op.create_table('staff_wechat',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('staff_id', sa.String(length=32), nullable=False),
    sa.Column('appid', sa.String(length=32), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('unionid', sa.String(length=64), nullable=True),
    sa.Column('bound_at', guideapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['staff_id', 'tenant_id'], ['staff.id', 'staff.tenant_id'], name=op.f('fk_staff_wechat_staff_id_staff')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_staff_wechat_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_wechat')),
    sa.UniqueConstraint('staff_id', 'appid', name=op.f('uq_staff_wechat_staff_id_appid')),
    sa.UniqueConstraint('tenant_id', 'appid', 'openid', name=op.f('uq_staff_wechat_tenant_id_appid_openid'))
    )
    with op.batch_alter_table('wechat_configs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mp_code_page', sa.String(length=128), nullable=True))
        batch_op.create_index('uq_wechat_configs_mp_appid', ['mp_appid'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('wechat_configs', schema=None) as batch_op:
        batch_op.drop_index('uq_wechat_configs_mp_appid')
        batch_op.drop_column('mp_code_page')

    op.drop_table('staff_wechat')
    op.drop_table('wechat_mp_codes')
