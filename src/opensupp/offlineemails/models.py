"""Offline emails: the table and the ``OfflineEmail`` a service answers."""

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, String, UniqueConstraint

from opensupp.accounts.models import child_table

offline_emails = child_table(
    "offline_emails",
    Column("email", String(254), nullable=False),
    Column("email_key", String(254), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("account_id", "email_key"),
)


@dataclass(slots=True)
class OfflineEmail:
    """An offline email as read: its fields are the columns ``OFFLINE_EMAILS`` reads, in order."""

    id: int
    email: str
