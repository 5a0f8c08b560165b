"""Partners and their API keys: the tables, and the ``Principal`` and ``KeyInfo`` the services answer."""

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, String, Table

from opensupp.db import metadata

# SQLite makes an INTEGER PRIMARY KEY the rowid; AUTOINCREMENT never reuses a deleted id.
Id = BigInteger().with_variant(Integer(), "sqlite")

partners = Table(
    "partners",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("partner_id", BigInteger, ForeignKey("partners.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)


@dataclass(slots=True)
class Principal:
    """Who is calling: the partner and the key they used."""

    partner_id: int
    key_id: int


@dataclass(slots=True)
class KeyInfo:
    """A key as ``keys list`` shows it (never the key itself, which is not stored)."""

    id: int
    partner_id: int
    partner_name: str
    name: str
    prefix: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None
