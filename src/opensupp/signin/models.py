"""The sign-in tables: one-time login links (only their SHA-256 is kept), the failed
password attempts counted per e-mail and per address, and the sessions signed out before
their cookie expired (a copy of the cookie must not sign in again)."""

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, LargeBinary, String, Table

from opensupp.db import metadata
from opensupp.partners.models import Id

login_links = Table(
    "login_links",
    metadata,
    Column("id", Id, primary_key=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    Column("used_at", BigInteger, nullable=True),
    sqlite_autoincrement=True,
)

sign_in_attempts = Table(
    "sign_in_attempts",
    metadata,
    # "email:<casefolded e-mail>" or "address:<client address>"
    Column("key", String(320), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("locked_until", BigInteger, nullable=False),
)

ended_sessions = Table(
    "ended_sessions",
    metadata,
    Column("sid_hash", LargeBinary(32), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)
