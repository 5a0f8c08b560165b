from sqlalchemy import BigInteger, Boolean, Column, String, Text

from opensupp.accounts.models import child_table

hooks = child_table(
    "hooks",
    Column("name", String(32), nullable=False),
    Column("config", Text, nullable=False),  # JSON: url, secret, events
    Column("active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
