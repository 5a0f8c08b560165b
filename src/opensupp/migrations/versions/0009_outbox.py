"""outbox: the deliveries of hooks' events

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 13:30:00.000000

The outbox (outbox/models.py): one row per event to send, written in the transaction of the
change that causes it, claimed by the worker, sent, and kept with its last result as the
hook's delivery log; deleted with its account or its hook.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('hook_id', sa.BigInteger(), nullable=True),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('webhook_id', sa.String(length=40), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=9), nullable=False),
    sa.Column('next_attempt_at', sa.BigInteger(), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_deliveries_account_id_accounts'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['hook_id'], ['hooks.id'], name=op.f('fk_deliveries_hook_id_hooks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index('ix_deliveries_hook_id_id', ['hook_id', 'id'], unique=False)
        batch_op.create_index('ix_deliveries_status_next_attempt_at', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    op.drop_table('deliveries')
