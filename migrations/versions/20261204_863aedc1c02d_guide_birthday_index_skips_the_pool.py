"""the guide birthday index skips the store pool: members with no guide are not in it

Revision ID: 863aedc1c02d
Revises: 9c1d2e3f4a5b
Create Date: 2026-12-04 02:30:00.000000+00:00

A guide's member search walks each side of its read rule on its own (policy.visible_branches):
bound to me, and my store's unassigned pool. For the pool side with "birthday this month",
PostgreSQL took ix_members_guide_birthday for `guide_id IS NULL` and read the birthdays of
every unassigned member in the tenant (3,426 at 1M members), instead of the store's pool
(ix_members_store_pool, a few rows). Rows with no guide are left out of the index, so the
pool side reads the store's pool, and the index is smaller by the pool.
"""
from alembic import op
import sqlalchemy as sa


revision = '863aedc1c02d'
down_revision = '9c1d2e3f4a5b'
branch_labels = None
depends_on = None

BOUND = sa.text('guide_id IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_guide_birthday')
        batch_op.create_index(
            'ix_members_guide_birthday', ['guide_id', 'birthday_mmdd'], unique=False,
            postgresql_where=BOUND, sqlite_where=BOUND,
        )


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_guide_birthday', postgresql_where=BOUND, sqlite_where=BOUND)
        batch_op.create_index('ix_members_guide_birthday', ['guide_id', 'birthday_mmdd'], unique=False)
