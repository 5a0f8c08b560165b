"""Triggers (auto-messages): stored as validated; the engine reads the same catalogue."""

from __future__ import annotations

from typing import Any

import orjson

from opensupp.accounts.children import ChildTable
from opensupp.db import Row, Session
from opensupp.timeutil import now

TRIGGERS = ChildTable(
    "triggers", "trigger",
    ("id", "active", "name", "description", "event", "only_once", "constraints", "conditions", "actions"),
)
_JSON = ("conditions", "actions")


def _encoded(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: orjson.dumps(v).decode() if k in _JSON else v for k, v in fields.items()}


async def create_trigger(
    session: Session, *, partner_id: int, account_id: int, name: str, actions: list[dict[str, Any]],
    active: bool = True, description: str = "", event: str = "onload", only_once: bool = True,
    constraints: str = "all", conditions: list[dict[str, Any]] | None = None,
) -> Row:
    values = _encoded({
        "active": active, "name": name, "description": description, "event": event, "only_once": only_once,
        "constraints": constraints, "conditions": conditions or [], "actions": actions, "created_at": now(),
    })
    return await TRIGGERS.insert(session, partner_id=partner_id, account_id=account_id, values=values)


async def update_trigger(
    session: Session, *, partner_id: int, account_id: int, item_id: int, changes: dict[str, Any]
) -> Row:
    return await TRIGGERS.update(
        session, partner_id=partner_id, account_id=account_id, item_id=item_id, values=_encoded(changes)
    )
