"""speech analysis: each clip's latest result, and talk tracks on skills

- clip_speech: one row per analysed clip (status, engine, confidence class, the result
  without its transcript, the transcript apart), for the media version it was computed from.
- skills: ``phrases_to_use`` and ``phrases_to_avoid`` (JSON lists, empty for existing rows).

Clips that were ready before this revision are not analysed by it (they have no result).

Revision ID: daf833ef4db0
Revises: 7ceac3b876b1
Create Date: 2026-12-05 14:15:59.563465
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'daf833ef4db0'
down_revision: str | None = '7ceac3b876b1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('clip_speech',
    sa.Column('clip_id', sa.Uuid(), nullable=False),
    sa.Column('media_version', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('ready', 'unavailable', 'failed', name='speechstatus', native_enum=False, length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('engine', sa.String(length=16), nullable=False),
    sa.Column('confidence_class', sa.String(length=8), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('transcript', sa.JSON(), nullable=True),
    sa.Column('analyzed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.Uuid(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clip_id'], ['clips.id'], name=op.f('fk_clip_speech_clip_id_clips'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_clip_speech_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clip_speech')),
    sa.UniqueConstraint('clip_id', name=op.f('uq_clip_speech_clip_id'))
    )
    with op.batch_alter_table('clip_speech', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clip_speech_org_id'), ['org_id'], unique=False)

    with op.batch_alter_table('skills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phrases_to_use', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column('phrases_to_avoid', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('skills', schema=None) as batch_op:
        batch_op.drop_column('phrases_to_avoid')
        batch_op.drop_column('phrases_to_use')

    with op.batch_alter_table('clip_speech', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clip_speech_org_id'))

    op.drop_table('clip_speech')