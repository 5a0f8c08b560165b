"""Hooks: the table and the ``Hook`` a service answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import BigInteger, Boolean, Column, String, Text

from opensupp.accounts.models import child_table

hooks = child_table(
    "hooks",
    Column("name", String(32), nullable=False),
    Column("config", Text, nullable=False),  # JSON: url, secret, events
    Column("active", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # after a secret's rotation, the old one also signs deliveries until previous_secret_until
    Column("previous_secret", Text, nullable=True),
    Column("previous_secret_until", BigInteger, nullable=True),
    Column("failing_since", BigInteger, nullable=True),  # the first failed attempt since the last delivered one
    Column("disabled_reason", Text, nullable=True),  # why the outbox deactivated the hook
)


@dataclass(slots=True)
class Hook:
    """A hook as read, its stored config decoded (``from_row``)."""

    id: int
    name: str
    config: dict[str, Any]
    active: bool
    created_at: int
    previous_secret_until: int | None = None  # the rotated-out secret signs too until then
    disabled_reason: str | None = None  # why the outbox deactivated it

    @classmethod
    def from_row(cls, id: int, name: str, config: str, active: bool | int, created_at: int,
                 previous_secret_until: int | None, disabled_reason: str | None) -> Hook:
        """From the columns ``HOOKS`` reads, in order: the config is stored as JSON text, and
        SQLite answers a boolean as 0 or 1."""
        return cls(id, name, orjson.loads(config), bool(active), created_at, previous_secret_until, disabled_reason)
