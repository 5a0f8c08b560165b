from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, String, Table, Text

from opensupp.db import metadata
from opensupp.partners.models import Id

triggers = Table(
    "triggers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False),
    Column("event", String(16), nullable=False),
    Column("only_once", Boolean, nullable=False),
    Column("constraints", String(8), nullable=False),
    Column("conditions", Text, nullable=False),  # JSON, as answered
    Column("actions", Text, nullable=False),  # JSON, as answered
    Column("created_at", BigInteger, nullable=False),
    Index("ix_triggers_account_id_id", "account_id", "id"),
    sqlite_autoincrement=True,
)
