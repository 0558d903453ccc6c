"""import_keys: the keys an import job met in earlier batches (in-file repeats)

Revision ID: d3b2e4f5a6c7
Revises: b1f0c2d3e4a5
Create Date: 2026-12-02 10:00:00.000000+00:00
"""
from alembic import op
import sqlalchemy as sa


revision = 'd3b2e4f5a6c7'
down_revision = 'b1f0c2d3e4a5'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_keys',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_import_keys_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'key', name=op.f('pk_import_keys'))
    )


def downgrade() -> None:
    op.drop_table('import_keys')
