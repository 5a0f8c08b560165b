"""triggers version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 18:45:00.000000

``triggers.version``: 0 when a trigger is created, incremented by every UPDATE of its row
(the application's ``SET ..., version = version + 1``: ChildTable.version). Any writer
that updates a trigger row, in the application or outside it, must bump ``version`` in the
same UPDATE, or the cache below keeps serving the row as it was.

The trigger engine caches an account's compiled triggers under the fingerprint
"id.version,..." of its triggers by id, read with the account in one statement from the
index (account_id, id, version) alone (triggers/service.py). Unlike a counter on the
account, nothing is written but the trigger row itself, so concurrent writes to the
triggers of one account do not queue on a shared row.

Why equal fingerprints mean equal triggers: a trigger's id is never reused (SQLite
AUTOINCREMENT, a PostgreSQL sequence) and its version only grows, so the same (id,
version) pairs are the same rows as they were. The fingerprint is the whole list, not a
summary such as (count, max id, sum of versions): on PostgreSQL a sequence value is taken
when the INSERT runs, not when it commits, so a lower id can appear after a higher one,
and with a delete in between such a summary can be equal for two different sets.
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.create_index('ix_triggers_account_id_id_version', ['account_id', 'id', 'version'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('triggers', schema=None) as batch_op:
        batch_op.drop_index('ix_triggers_account_id_id_version')

    sqlite = op.get_context().dialect.name == 'sqlite'
    # SQLite: dropping the column copies the table into a new one, which must keep
    # AUTOINCREMENT and the highest id ever given out (so the id of a deleted trigger is
    # still never reused)
    seq = None
    if sqlite:
        seq = op.get_bind().exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = 'triggers'").scalar()
    with op.batch_alter_table('triggers', schema=None, table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('version')
    if seq is not None:
        op.execute("DELETE FROM sqlite_sequence WHERE name = 'triggers'")
        op.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('triggers', :seq)").bindparams(seq=seq))
