from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, UniqueConstraint

from opensupp.db import metadata
from opensupp.partners.models import Id

offline_emails = Table(
    "offline_emails",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(254), nullable=False),
    Column("email_key", String(254), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("account_id", "email_key"),
    Index("ix_offline_emails_account_id_id", "account_id", "id"),
    sqlite_autoincrement=True,
)
