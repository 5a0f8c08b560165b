"""accounts triggers revision

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 20:30:00.000000

``accounts.triggers_revision``: on SQLite, a counter that every INSERT, UPDATE and DELETE
of one of the account's triggers increments, in the same transaction, by the database's own
triggers (below), whoever the writer is. The trigger engine caches an account's compiled
triggers under it (triggers/service.py): one column read with the account, where the
fingerprint of migration 0003 ("id.version,..." of all the account's triggers) is an
aggregate over every trigger of the account, on each evaluation (most of the statement's
cost on SQLite).

Why only SQLite: SQLite runs one write transaction at a time, so a row every trigger write
updates makes no writer wait that would not have waited anyway. On PostgreSQL, writers of
one account's triggers run concurrently and commit together; a shared row would make each
wait for the previous one's commit (trigger creates, measured against pgbench's rate, became
far slower). There the column stays 0 and the cache keeps using 0003's fingerprint.

Why equal revisions mean equal triggers: the counter only grows, and is written in the
transaction that changes the triggers, so a snapshot with the same revision has the same
triggers; account ids are never reused (AUTOINCREMENT), so no new account inherits a
revision its id had before.

A later migration that rebuilds ``triggers`` on SQLite (``batch_alter_table`` copies it into
a new table) drops these database triggers with the old table and must create them again;
tests/test_trigger_revision.py fails without them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# (name, event, the statements run for each row written). ``id = ...``, not ``id IN (...)``:
# an IN list costs SQLite a temporary table on every row (an insert of many rows is
# markedly slower with IN than with ``=``). A trigger's account_id never
# changes through the API; if SQL moves one, both accounts' revisions move.
_BUMP = "UPDATE accounts SET triggers_revision = triggers_revision + 1 WHERE id = {}"
_SQLITE_TRIGGERS = (
    ("triggers_revision_insert", "INSERT", [_BUMP.format("NEW.account_id")]),
    ("triggers_revision_update", "UPDATE",
     [_BUMP.format("NEW.account_id"), _BUMP.format("OLD.account_id") + " AND OLD.account_id != NEW.account_id"]),
    ("triggers_revision_delete", "DELETE", [_BUMP.format("OLD.account_id")]),
)


def upgrade() -> None:
    # a plain ADD COLUMN (no batch copy of the table): SQLite adds a NOT NULL column with
    # a constant default in place
    op.add_column('accounts', sa.Column('triggers_revision', sa.BigInteger(), server_default='0', nullable=False))
    if op.get_context().dialect.name == 'sqlite':
        for name, event, statements in _SQLITE_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON triggers BEGIN {'; '.join(statements)}; END")


def downgrade() -> None:
    if op.get_context().dialect.name == 'sqlite':
        for name, _, _ in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # SQLite (3.35+) drops a column in place, so AUTOINCREMENT's sequence is kept
    op.drop_column('accounts', 'triggers_revision')
