from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, Text

from opensupp.db import metadata
from opensupp.partners.models import Id

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("email", String(254), nullable=False),
    # the login: unique across the server, compared case-insensitively
    Column("email_key", String(254), nullable=False, unique=True),
    Column("fullname", String(255), nullable=False),
    Column("nickname", String(255), nullable=False),
    Column("avatar", String(2000), nullable=False),
    Column("note", Text, nullable=False),
    Column("lang", String(8), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_users_account_id_id", "account_id", "id"),
    sqlite_autoincrement=True,
)
