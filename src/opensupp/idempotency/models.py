"""Idempotency keys: the table, and the ``StoredAnswer`` a key replays."""

from typing import NamedTuple

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, PrimaryKeyConstraint, String, Table, Text

from opensupp.db import metadata

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("partner_id", BigInteger, ForeignKey("partners.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", LargeBinary(32), nullable=False),  # sha256 of path + canonical body
    Column("status", Integer, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False, index=True),
    PrimaryKeyConstraint("partner_id", "key"),
)


class StoredAnswer(NamedTuple):
    """The answer saved under a key, replayed as it was: its status and JSON text. (A named
    tuple: the edge unpacks it as ``status, response``.)"""

    status: int
    response: str
