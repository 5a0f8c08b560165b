"""partner api resources

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 14:12:58.047870
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hooks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_hooks_account_id_accounts'),
        ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hooks')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('hooks', schema=None) as batch_op:
        batch_op.create_index('ix_hooks_account_id_id', ['account_id', 'id'], unique=False)

    op.create_table('office_hours',
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_office_hours_account_id_accounts'),
        ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_office_hours'))
    )
    op.create_table('offline_emails',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('email_key', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_offline_emails_account_id_accounts'),
        ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_offline_emails')),
    sa.UniqueConstraint('account_id', 'email_key', name=op.f('uq_offline_emails_account_id_email_key')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('offline_emails', schema=None) as batch_op:
        batch_op.create_index('ix_offline_emails_account_id_id', ['account_id', 'id'], unique=False)

    op.create_table('triggers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('only_once', sa.Boolean(), nullable=False),
    sa.Column('constraints', sa.String(length=8), nullable=False),
    sa.Column('conditions', sa.Text(), nullable=False),
    sa.Column('actions', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_triggers_account_id_accounts'),
        ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_triggers')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.create_index('ix_triggers_account_id_id', ['account_id', 'id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('email_key', sa.String(length=254), nullable=False),
    sa.Column('fullname', sa.String(length=255), nullable=False),
    sa.Column('nickname', sa.String(length=255), nullable=False),
    sa.Column('avatar', sa.String(length=2000), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('lang', sa.String(length=8), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_users_account_id_accounts'),
        ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email_key', name=op.f('uq_users_email_key')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index('ix_users_account_id_id', ['account_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('ix_users_account_id_id')

    op.drop_table('users')
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.drop_index('ix_triggers_account_id_id')

    op.drop_table('triggers')
    with op.batch_alter_table('offline_emails', schema=None) as batch_op:
        batch_op.drop_index('ix_offline_emails_account_id_id')

    op.drop_table('offline_emails')
    op.drop_table('office_hours')
    with op.batch_alter_table('hooks', schema=None) as batch_op:
        batch_op.drop_index('ix_hooks_account_id_id')

    op.drop_table('hooks')
