"""The chat box's look: the table (one row per account, none until the first update) and
the ``BoxLook`` a service answers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, ForeignKey, String, Table, Text

from opensupp.db import metadata

box_looks = Table(
    "box_looks",
    metadata,
    Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("color", String(7), nullable=False),  # "#rrggbb"
    Column("position", String(5), nullable=False),  # "right" | "left"
    Column("title", Text, nullable=False),  # "": the account's title
    Column("welcome", Text, nullable=False),  # "": the box's own greeting, in the visitor's language
    Column("updated_at", BigInteger, nullable=False),
)


@dataclass(slots=True)
class BoxLook:
    color: str
    position: str
    title: str
    welcome: str


#: an account's look before any update: the box's own colour, on the right, its own texts
DEFAULT = BoxLook(color="#1565c0", position="right", title="", welcome="")
