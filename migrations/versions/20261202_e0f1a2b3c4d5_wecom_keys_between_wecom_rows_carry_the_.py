"""wecom: keys between wecom rows carry the tenant

Revision ID: e0f1a2b3c4d5
Revises: c8d9e0f1a2b3
Create Date: 2026-12-02 09:34:23.546612+00:00
"""
from alembic import op
import sqlalchemy as sa
import guideapp.db


revision = 'e0f1a2b3c4d5'
down_revision = 'c8d9e0f1a2b3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The (tenant_id, id) keys first: the new foreign keys name them.
    with op.batch_alter_table('wecom_contacts', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_wecom_contacts_tenant_id_id'), ['tenant_id', 'id'])

    with op.batch_alter_table('wecom_events', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_wecom_events_tenant_id_id'), ['tenant_id', 'id'])

    with op.batch_alter_table('wecom_transfers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_wecom_transfers_contact_id_wecom_contacts'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_wecom_transfers_contact_id_wecom_contacts'), 'wecom_contacts', ['contact_id', 'tenant_id'], ['id', 'tenant_id'])

    with op.batch_alter_table('wecom_alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_wecom_alerts_event_id_wecom_events'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_wecom_alerts_event_id_wecom_events'), 'wecom_events', ['event_id', 'tenant_id'], ['id', 'tenant_id'])



def downgrade() -> None:
    # The foreign keys first: they lean on the (tenant_id, id) keys.
    with op.batch_alter_table('wecom_transfers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_wecom_transfers_contact_id_wecom_contacts'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_wecom_transfers_contact_id_wecom_contacts'), 'wecom_contacts', ['contact_id'], ['id'])

    with op.batch_alter_table('wecom_alerts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_wecom_alerts_event_id_wecom_events'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_wecom_alerts_event_id_wecom_events'), 'wecom_events', ['event_id'], ['id'])

    with op.batch_alter_table('wecom_events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_wecom_events_tenant_id_id'), type_='unique')

    with op.batch_alter_table('wecom_contacts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_wecom_contacts_tenant_id_id'), type_='unique')

