"""sign in: login links and failed attempts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:35:02.672590

The dashboard's sign-in (signin/models.py): one-time login links, kept as the SHA-256 of
their token, deleted with their user or account; and the failed password attempts counted
per e-mail and per client address (no foreign key: an unknown e-mail is counted too); the
sessions signed out before their cookie expired (the SHA-256 of their id), until it would have.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sign_in_attempts',
    sa.Column('key', sa.String(length=320), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('locked_until', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sign_in_attempts'))
    )
    op.create_table('ended_sessions',
    sa.Column('sid_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('sid_hash', name=op.f('pk_ended_sessions'))
    )
    with op.batch_alter_table('ended_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ended_sessions_expires_at'), ['expires_at'], unique=False)

    op.create_table('login_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('used_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_login_links_account_id_accounts'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_login_links_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_login_links_token_hash')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('login_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_links_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_links_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('login_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_links_user_id'))
        batch_op.drop_index(batch_op.f('ix_login_links_expires_at'))

    op.drop_table('login_links')
    op.drop_table('sign_in_attempts')
    with op.batch_alter_table('ended_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ended_sessions_expires_at'))
    op.drop_table('ended_sessions')
