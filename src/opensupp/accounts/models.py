"""Accounts: the table, the ``Account`` a service answers, and the ``child_table`` factory of
the tables under an account."""

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, UniqueConstraint

from opensupp.db import metadata
from opensupp.partners.models import Id


@dataclass(slots=True)
class Account:
    """An account as the services answer it; the fields are ``COLUMNS``, in order."""

    id: int
    title: str
    lang: str
    account_key: str
    created_at: int


COLUMNS = "id, title, lang, account_key, created_at"

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("partner_id", BigInteger, ForeignKey("partners.id", ondelete="CASCADE"), nullable=False),
    Column("title", String(255), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("account_key", String(40), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    # SQLite: incremented by the database with every write to the account's triggers, the
    # key its compiled triggers are cached under; PostgreSQL: always 0 (migration 0004)
    Column("triggers_revision", BigInteger, nullable=False, server_default="0"),
    # the keyset index every partner-scoped list and lookup uses
    Index("ix_accounts_partner_id_id", "partner_id", "id"),
    sqlite_autoincrement=True,
)


def child_table(name: str, *columns: Column | UniqueConstraint, keyset: tuple[str, ...] = ()) -> Table:
    """A table under an account: ``id``, ``account_id`` (deleted with the account), the
    columns given, and the (account_id, id) index that scoped lookups and pages use, with
    the ``keyset`` columns after them (an index that leads with (account_id, id) serves
    those reads as well, so a table needs no second one)."""
    return Table(
        name,
        metadata,
        Column("id", Id, primary_key=True),
        Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        *columns,
        Index("_".join(("ix", name, "account_id", "id", *keyset)), "account_id", "id", *keyset),
        sqlite_autoincrement=True,
    )
