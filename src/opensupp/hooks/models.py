from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, String, Table, Text

from opensupp.db import metadata
from opensupp.partners.models import Id

hooks = Table(
    "hooks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(32), nullable=False),
    Column("config", Text, nullable=False),  # JSON: url, secret, events
    Column("active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_hooks_account_id_id", "account_id", "id"),
    sqlite_autoincrement=True,
)
