"""task targets without foreign keys

Revision ID: 5c1f0e2a7d93
Revises: e4b1f4b00c94
Create Date: 2026-12-01 19:00:00.000000+00:00

A campaign fan-out writes hundreds of thousands of targets in one statement; each foreign-key
check row-locked its member, task and tenant. See guideapp/tasks/models.py TaskTarget.
"""
from alembic import op


revision = '5c1f0e2a7d93'
down_revision = 'e4b1f4b00c94'
branch_labels = None
depends_on = None

DROPPED = (
    ("fk_task_targets_member_id_members", "members", "member_id"),
    ("fk_task_targets_task_id_tasks", "tasks", "task_id"),
    ("fk_task_targets_tenant_id_tenants", "tenants", "tenant_id"),
)


def upgrade() -> None:
    with op.batch_alter_table('task_targets', schema=None) as batch_op:
        for name, _table, _column in DROPPED:
            batch_op.drop_constraint(name, type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('task_targets', schema=None) as batch_op:
        for name, table, column in DROPPED:
            batch_op.create_foreign_key(name, table, [column], ['id'])
