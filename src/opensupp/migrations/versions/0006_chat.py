"""chat: visitors, page views, conversations, messages

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 06:13:06.807915

The chat's four tables under an account (chat/models.py): visitors (unique by (account_id,
vid)), their page views, conversations (listed by account and id, filtered by account and
last_message_at) and messages (read by conversation and id; (conversation_id, client_id)
unique, so a client's retry finds its first message). A visitor's first message after a
trigger's names that trigger (``replied_trigger_id``: the stats count replies to auto
messages), and a visitor's ``visit_started_ms`` is what the triggers' site clock counts
from. Each is deleted with its account by ON DELETE CASCADE, within the account delete's
one statement; page views and conversations cascade from their visitor too, and messages
from their conversation, which is what the retention purge deletes by.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _under(table: str, parent: str | None = None) -> list[Any]:
    """``id``, ``account_id`` (and ``<parent>_id``), each parent deleting its rows."""
    items: list[Any] = [
        sa.Column('id', Id, nullable=False),
        sa.Column('account_id', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f(f'fk_{table}_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{table}')),
    ]
    if parent is not None:
        items += [
            sa.Column(f'{parent}_id', sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint([f'{parent}_id'], [f'{parent}s.id'], ondelete='CASCADE',
                                    name=op.f(f'fk_{table}_{parent}_id_{parent}s')),
        ]
    return items


def upgrade() -> None:
    op.create_table(
        'visitors', *_under('visitors'),
        sa.Column('vid', sa.String(length=22), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('phone', sa.String(length=64), nullable=False),
        sa.Column('lang', sa.String(length=8), nullable=False),
        sa.Column('grp', sa.String(length=255), nullable=False),
        sa.Column('variables', sa.Text(), nullable=False),
        sa.Column('visits', sa.Integer(), nullable=False),
        sa.Column('chats', sa.Integer(), nullable=False),
        sa.Column('first_seen_at', sa.BigInteger(), nullable=False),
        sa.Column('last_seen_at', sa.BigInteger(), nullable=False),
        sa.Column('last_url', sa.String(length=2000), nullable=False),
        sa.Column('last_title', sa.String(length=1000), nullable=False),
        sa.Column('referrer', sa.String(length=2000), nullable=False),
        sa.Column('user_agent', sa.String(length=512), nullable=False),
        sa.Column('visit_started_ms', sa.BigInteger(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_visitors_account_id_id', 'visitors', ['account_id', 'id'])
    op.create_index('ix_visitors_account_id_vid', 'visitors', ['account_id', 'vid'], unique=True)
    op.create_index('ix_visitors_last_seen_at', 'visitors', ['last_seen_at'])

    op.create_table(
        'conversations', *_under('conversations', 'visitor'),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('offline', sa.Boolean(), nullable=False),
        sa.Column('assigned_user_id', sa.BigInteger(), nullable=True),
        sa.Column('rating', sa.SmallInteger(), nullable=True),
        sa.Column('rating_text', sa.Text(), nullable=False),
        sa.Column('close_type', sa.String(length=16), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('last_message_at', sa.BigInteger(), nullable=False),
        sa.Column('closed_at', sa.BigInteger(), nullable=True),
        sa.Column('unread_by_visitor', sa.Integer(), nullable=False),
        sa.Column('unread_by_agents', sa.Integer(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_conversations_account_id_id', 'conversations', ['account_id', 'id'])
    op.create_index('ix_conversations_account_id_last_message_at', 'conversations', ['account_id', 'last_message_at'])
    op.create_index('ix_conversations_closed_at', 'conversations', ['closed_at'])
    op.create_index('ix_conversations_visitor_id_id', 'conversations', ['visitor_id', 'id'])

    op.create_table(
        'page_views', *_under('page_views', 'visitor'),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('title', sa.String(length=1000), nullable=False),
        sa.Column('referrer', sa.String(length=2000), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_page_views_account_id_id', 'page_views', ['account_id', 'id'])
    op.create_index('ix_page_views_at', 'page_views', ['at'])
    op.create_index('ix_page_views_visitor_id_id', 'page_views', ['visitor_id', 'id'])

    op.create_table(
        'messages', *_under('messages', 'conversation'),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=True),
        sa.Column('trigger_id', sa.BigInteger(), nullable=True),
        sa.Column('agent_nick', sa.String(length=255), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('replied_trigger_id', sa.BigInteger(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_messages_account_id_id', 'messages', ['account_id', 'id'])
    op.create_index('ix_messages_conversation_id_client_id', 'messages', ['conversation_id', 'client_id'], unique=True)
    op.create_index('ix_messages_conversation_id_id', 'messages', ['conversation_id', 'id'])


def downgrade() -> None:
    for table in ('messages', 'page_views', 'conversations', 'visitors'):
        op.drop_table(table)  # its indexes go with it
