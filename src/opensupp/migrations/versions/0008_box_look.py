"""box look: the chat box's colour, side and texts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:00:00.000000

The chat box's look (boxlook/models.py): one row per account, written by the partner API's
/accounts/:aid/box/update and the admin pages' editor, read by the box; deleted with its
account. An account without a row has the default look.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('box_looks',
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('color', sa.String(length=7), nullable=False),
    sa.Column('position', sa.String(length=5), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('welcome', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_box_looks_account_id_accounts'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_box_looks'))
    )


def downgrade() -> None:
    op.drop_table('box_looks')
