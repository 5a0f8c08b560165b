from sqlalchemy import BigInteger, Column, ForeignKey, Table, Text

from opensupp.db import metadata

office_hours = Table(
    "office_hours",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("document", Text, nullable=False),  # JSON, as answered
    Column("updated_at", BigInteger, nullable=False),
)
