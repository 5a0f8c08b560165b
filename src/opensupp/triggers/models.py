from sqlalchemy import BigInteger, Boolean, Column, String, Text

from opensupp.accounts.models import child_table

triggers = child_table(
    "triggers",
    Column("active", Boolean, nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False),
    Column("event", String(16), nullable=False),
    Column("only_once", Boolean, nullable=False),
    Column("constraints", String(8), nullable=False),
    Column("conditions", Text, nullable=False),  # JSON, as answered
    Column("actions", Text, nullable=False),  # JSON, as answered
    Column("created_at", BigInteger, nullable=False),
)
