"""Hooks: where an account's statistics and conversations are sent (delivery comes later)."""

from __future__ import annotations

from typing import Any

import orjson

from opensupp.db import Session
from opensupp.db.children import ChildTable
from opensupp.errors import ValidationFailed
from opensupp.hooks.models import Hook
from opensupp.hooks.validation import validate_hook_config
from opensupp.timeutil import now

HOOKS = ChildTable("hooks", "hook", ("id", "name", "config", "active", "created_at"), record=Hook.from_row)


def checked_config(name: str, config: dict[str, Any]) -> str:
    normalized, errors = validate_hook_config(name, config)
    if errors:
        raise ValidationFailed(errors)
    return orjson.dumps(normalized).decode()


async def create_hook(
    session: Session, *, partner_id: int, account_id: int, name: str, config: dict[str, Any], active: bool = True
) -> Hook:
    values = {"name": name, "config": checked_config(name, config), "active": active, "created_at": now()}
    return await HOOKS.insert(session, partner_id=partner_id, account_id=account_id, values=values)


async def update_hook(
    session: Session, *, partner_id: int, account_id: int, item_id: int, changes: dict[str, Any]
) -> Hook:
    """A new ``config`` replaces the old one, but keeps its ``secret`` unless a new one is
    given, so changing a URL never silently changes how deliveries are signed."""
    values = dict(changes)
    if "name" in values or "config" in values:
        current = await HOOKS.get(session, partner_id=partner_id, account_id=account_id, item_id=item_id)
        name = values.get("name", current.name)
        config = values.get("config")
        if config is None:
            config = {k: v for k, v in current.config.items() if k != "events" or name == "webhook"}
        elif "secret" not in config:
            config = {**config, "secret": current.config["secret"]}
        values["config"] = checked_config(name, config)
    return await HOOKS.update(session, partner_id=partner_id, account_id=account_id, item_id=item_id, values=values)
