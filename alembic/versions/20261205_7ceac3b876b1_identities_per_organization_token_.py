"""identities per organization, token versions, login failures per client address

- users: an email is unique within its organization (was: across all of them), so an admin
  can neither learn whether an address exists elsewhere nor take it from another company;
  and ``token_version``, which access tokens carry (bumped to revoke them).
- login_failures: each failure records the client address too. The table only holds the
  last minute or so of failures, so it is recreated empty rather than backfilled.

Downgrading restores the global uniqueness, and fails while an email has accounts in
several organizations (merge or rename them first).

Revision ID: 7ceac3b876b1
Revises: ddf952e774ea
Create Date: 2026-12-05 13:02:50.749572
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '7ceac3b876b1'
down_revision: str | None = 'ddf952e774ea'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create_login_failures(*, with_address: bool) -> None:
    columns = [sa.Column('email', sa.String(length=320), nullable=False)]
    if with_address:
        columns.append(sa.Column('address', sa.String(length=64), nullable=False))
    op.create_table('login_failures',
    *columns,
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        if with_address:
            batch_op.create_index('ix_login_failures_email_address_at', ['email', 'address', 'created_at'], unique=False)
            batch_op.create_index('ix_login_failures_address_at', ['address', 'created_at'], unique=False)
        else:
            batch_op.create_index('ix_login_failures_email_at', ['email', 'created_at'], unique=False)


def upgrade() -> None:
    # Throttling state of the last window only: nothing worth carrying over.
    op.drop_table('login_failures')
    _create_login_failures(with_address=True)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_version', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_constraint(batch_op.f('uq_users_email'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_users_email_org_id'), ['email', 'org_id'])


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_email_org_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_users_email'), ['email'])
        batch_op.drop_column('token_version')

    op.drop_table('login_failures')
    _create_login_failures(with_address=False)
