"""commission_month_counts: each guide's counted recruits per month, kept beside the recruits

Revision ID: e6f7a8b9c0d1
Revises: a8b9c0d1e2f3
Create Date: 2026-12-02 08:00:00.000000+00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'e6f7a8b9c0d1'
down_revision = 'a8b9c0d1e2f3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('commission_month_counts',
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('guide_id', sa.String(length=32), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('counted', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['guide_id', 'tenant_id'], ['staff.id', 'staff.tenant_id'], name=op.f('fk_commission_month_counts_guide_id_staff')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_commission_month_counts_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'guide_id', 'month', name=op.f('pk_commission_month_counts'))
    )
    # The counts of the recruits already there.
    op.execute(
        "INSERT INTO commission_month_counts (tenant_id, guide_id, month, counted) "
        "SELECT tenant_id, guide_id, month, count(*) FROM commission_recruits "
        "WHERE state = 'counted' GROUP BY tenant_id, guide_id, month"
    )


def downgrade() -> None:
    op.drop_table('commission_month_counts')
