"""event subscribers: each organization's count of enabled webhook endpoints, kept beside its
event sequence so recording an event looks for endpoints only where some exist

Revision ID: ddf952e774ea
Revises: 30116ca249ca
Create Date: 2026-12-05 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'ddf952e774ea'
down_revision: str | None = '30116ca249ca'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('event_sequences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscribers', sa.Integer(), server_default='0', nullable=False))
    # Organizations that already have endpoints: a sequence row (if they have none yet) and
    # their count, so no event is missed after the upgrade.
    op.execute(
        """
        INSERT INTO event_sequences (org_id, last_seq, subscribers)
        SELECT DISTINCT org_id, 0, 0 FROM webhook_endpoints
        WHERE org_id NOT IN (SELECT org_id FROM event_sequences)
        """
    )
    op.execute(
        """
        UPDATE event_sequences SET subscribers = (
            SELECT COUNT(*) FROM webhook_endpoints
            WHERE webhook_endpoints.org_id = event_sequences.org_id
              AND webhook_endpoints.enabled
        )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table('event_sequences', schema=None) as batch_op:
        batch_op.drop_column('subscribers')
