"""hooks' delivery state: secret rotation, deactivation, one delivery per event key

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 15:00:00.000000

A hook keeps its previous secret for a while after a rotation (``previous_secret``,
``previous_secret_until``: deliveries are signed with both meanwhile), and records since when
its deliveries have been failing (``failing_since``) and why it was deactivated
(``disabled_reason``). A delivery's ``webhook_id`` is unique, and compared byte by byte on
PostgreSQL (``COLLATE "C"``, so that a key's prefix is a range of its index): an event with a key of its own
(the hourly stats of one hook for one hour) is enqueued once however many processes tick.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_secret', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_until', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('failing_since', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('disabled_reason', sa.Text(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':  # byte-wise, as SQLite compares: key prefixes are index ranges
        op.alter_column('deliveries', 'webhook_id', type_=sa.String(length=40, collation='C'))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_webhook_id', ['webhook_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_webhook_id')
    with op.batch_alter_table('hooks', schema=None) as batch_op:
        batch_op.drop_column('disabled_reason')
        batch_op.drop_column('failing_since')
        batch_op.drop_column('previous_secret_until')
        batch_op.drop_column('previous_secret')
