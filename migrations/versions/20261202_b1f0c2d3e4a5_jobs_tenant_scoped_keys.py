"""jobs: tenant-scoped keys to their starter and store

Revision ID: b1f0c2d3e4a5
Revises: a7c3e9d1f2b4
Create Date: 2026-12-02 10:00:00.000000+00:00

jobs.started_by and jobs.store_id become (column, tenant_id) -> staff / stores (id,
tenant_id), like every other table's keys since a7c3e9d1b4f2: the database refuses a job
of one tenant that names another tenant's staff or store. Each key keeps its name.
"""
from alembic import op


revision = 'b1f0c2d3e4a5'
down_revision = 'a7c3e9d1f2b4'
branch_labels = None
depends_on = None

KEYS = (  # column, parent
    ("started_by", "staff"),
    ("store_id", "stores"),
)


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        for column, parent in KEYS:
            name = f'fk_jobs_{column}_{parent}'
            batch_op.drop_constraint(name, type_='foreignkey')
            batch_op.create_foreign_key(name, parent, [column, 'tenant_id'], ['id', 'tenant_id'])


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        for column, parent in KEYS:
            name = f'fk_jobs_{column}_{parent}'
            batch_op.drop_constraint(name, type_='foreignkey')
            batch_op.create_foreign_key(name, parent, [column], ['id'])
