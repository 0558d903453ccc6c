"""jobs: our record of each long piece of work (guideapp/jobs, docs/jobs.md)

Revision ID: a7c3e9d1f2b4
Revises: a7c3e9d1b4f2
Create Date: 2026-12-01 20:00:00.000000+00:00
"""
from alembic import op
import sqlalchemy as sa
import guideapp.db


revision = 'a7c3e9d1f2b4'
down_revision = 'a7c3e9d1b4f2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('started_by', sa.String(length=32), nullable=True),
    sa.Column('store_id', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=True),
    sa.Column('progress_unit', sa.String(length=20), nullable=False),
    sa.Column('checkpoint', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_detail', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('created_at', guideapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', guideapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', guideapp.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', guideapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', guideapp.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_jobs_state')),
    sa.ForeignKeyConstraint(['started_by'], ['staff.id'], name=op.f('fk_jobs_started_by_staff')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_jobs_store_id_stores')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_jobs_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('tenant_id', 'started_by', 'idempotency_key', name=op.f('uq_jobs_tenant_id_started_by_idempotency_key'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_started_by', ['started_by', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_state_heartbeat', ['state', 'heartbeat_at'], unique=False)
        batch_op.create_index('ix_jobs_store_created', ['store_id', 'created_at'], unique=False)
        batch_op.create_index('ix_jobs_subject', ['tenant_id', 'subject', 'state'], unique=False)
        batch_op.create_index('ix_jobs_tenant_created', ['tenant_id', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_tenant_created')
        batch_op.drop_index('ix_jobs_subject')
        batch_op.drop_index('ix_jobs_store_created')
        batch_op.drop_index('ix_jobs_state_heartbeat')
        batch_op.drop_index('ix_jobs_started_by')

    op.drop_table('jobs')
