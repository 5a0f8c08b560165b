"""triggers: one keyset index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 21:20:00.000000

``ix_triggers_account_id_id`` goes: ``ix_triggers_account_id_id_version`` (migration 0003)
leads with the same two columns, so it serves every read the first one served (a trigger by
id in its account, a page of an account's triggers by id), and each trigger written no
longer updates two indexes where one will do (on SQLite, with 0004's revision and both
indexes, trigger creates were measurably slower than before 0004).
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_triggers_account_id_id', table_name='triggers')


def downgrade() -> None:
    op.create_index('ix_triggers_account_id_id', 'triggers', ['account_id', 'id'], unique=False)
