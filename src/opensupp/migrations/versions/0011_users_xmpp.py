"""users: when each last logged in with an XMPP client

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:00:00.000000

``xmpp_login_at`` is set by the authentication endpoint Prosody calls (xmpp/auth.py) when an
agent's XMPP login succeeds. The XMPP bridge writes an account's visitors to those agents,
online or not (Prosody keeps the messages of an offline agent for the next login); a partial
index finds them.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('xmpp_login_at', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_users_xmpp_login_at', ['account_id'], unique=False,
                              sqlite_where=sa.text('xmpp_login_at IS NOT NULL'),
                              postgresql_where=sa.text('xmpp_login_at IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_xmpp_login_at')
        batch_op.drop_column('xmpp_login_at')
