from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
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
    # Incremented by every UPDATE of the row (the application's SET ``version = version + 1``,
    # see ChildTable.version; any other writer that updates a trigger row must bump it too).
    # With ids never reused, "id.version,..." of an account's triggers changes with every
    # insert, update or delete of them: on PostgreSQL, the key the compiled triggers of the
    # account are cached under (migrations 0003 and 0004).
    Column("version", BigInteger, nullable=False, server_default="0"),
    # (account_id, id, version): PostgreSQL's fingerprint of an account's triggers is read
    # from this index alone, and it is the keyset index of pages and lookups too (0005)
    keyset=("version",),
)


@dataclass(slots=True)
class Trigger:
    """A trigger as read (``service.TRIGGERS``' columns), its conditions and actions decoded."""

    id: int
    active: bool
    name: str
    description: str
    event: str
    only_once: bool
    constraints: str
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]

    @classmethod
    def from_row(
        cls, id: int, active: bool | int, name: str, description: str, event: str, only_once: bool | int,
        constraints: str, conditions: str, actions: str,
    ) -> Trigger:
        """From the columns ``TRIGGERS`` reads, in order: conditions and actions are stored as
        JSON text, and SQLite answers a boolean as 0 or 1."""
        return cls(id, bool(active), name, description, event, bool(only_once), constraints, orjson.loads(conditions),
                   orjson.loads(actions))
