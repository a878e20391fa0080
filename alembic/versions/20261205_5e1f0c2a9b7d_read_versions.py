"""read versions: each organization's counter of committed changes to what the cached reads
(feedback pages, prep kits) show, kept by triggers on the tables they read

Revision ID: 5e1f0c2a9b7d
Revises: 28618bf622d1
Create Date: 2026-12-05 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5e1f0c2a9b7d'
down_revision: str | None = '28618bf622d1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here (not imported) so the migration keeps meaning what it meant; the app's
# list is app.readcache.cache.WATCHED_TABLES, and a test checks both agree.
TABLES = (
    'users', 'clips', 'review_requests', 'feedback', 'feedback_reactions', 'stages', 'skills',
    'exemplars', 'clip_speech',
)

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION peerpitch_bump_read_version() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    org uuid;
BEGIN
    IF TG_OP = 'DELETE' THEN org := OLD.org_id; ELSE org := NEW.org_id; END IF;
    -- Runs as the transaction commits (deferred); moves the version once per transaction.
    INSERT INTO read_versions AS v (org_id, version, xact) VALUES (org, 1, txid_current())
    ON CONFLICT (org_id) DO UPDATE SET version = v.version + 1, xact = EXCLUDED.xact
    WHERE v.xact IS DISTINCT FROM EXCLUDED.xact;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        'read_versions',
        sa.Column('org_id', sa.Uuid(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('xact', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('org_id', name=op.f('pk_read_versions')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(PG_FUNCTION)
        for table in TABLES:
            op.execute(
                f'CREATE CONSTRAINT TRIGGER read_version_{table} '
                f'AFTER INSERT OR UPDATE OR DELETE ON {table} '
                'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW '
                'EXECUTE FUNCTION peerpitch_bump_read_version()'
            )
        return
    for table in TABLES:
        for when, row in (('INSERT', 'NEW'), ('UPDATE', 'NEW'), ('DELETE', 'OLD')):
            op.execute(
                f'CREATE TRIGGER read_version_{table}_{when.lower()} AFTER {when} ON {table} '
                'BEGIN '
                f'INSERT INTO read_versions (org_id, version) VALUES ({row}.org_id, 1) '
                'ON CONFLICT (org_id) DO UPDATE SET version = version + 1; '
                'END'
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f'DROP TRIGGER IF EXISTS read_version_{table} ON {table}')
        op.execute('DROP FUNCTION IF EXISTS peerpitch_bump_read_version()')
    else:
        for table in TABLES:
            for when in ('insert', 'update', 'delete'):
                op.execute(f'DROP TRIGGER IF EXISTS read_version_{table}_{when}')
    op.drop_table('read_versions')
