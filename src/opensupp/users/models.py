"""Users: the table and the ``User`` a service answers (never its password hash)."""

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, String, Text, text

from opensupp.accounts.models import child_table

users = child_table(
    "users",
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
    # when the user last logged in with an XMPP client (xmpp/auth.py): the XMPP bridge writes
    # the account's visitors to such agents, to be kept for them while they are offline
    Column("xmpp_login_at", BigInteger, nullable=True),
)
Index("ix_users_xmpp_login_at", users.c.account_id, sqlite_where=text("xmpp_login_at IS NOT NULL"),
      postgresql_where=text("xmpp_login_at IS NOT NULL"))


@dataclass(slots=True)
class User:
    """A user as read: its fields are the columns ``USERS`` reads, in order."""

    id: int
    role: str
    email: str
    fullname: str
    nickname: str
    avatar: str
    note: str
    lang: str
    created_at: int
