"""Hooks: where an account's statistics and conversations are sent (delivery comes later)."""

from __future__ import annotations

from typing import Any

import orjson

from opensupp.db import Session
from opensupp.db.children import ChildTable
from opensupp.errors import FieldError, ValidationFailed
from opensupp.hooks.models import Hook
from opensupp.hooks.validation import check_secret, new_secret, validate_hook_config
from opensupp.timeutil import now

HOOKS = ChildTable("hooks", "hook", ("id", "name", "config", "active", "created_at", "previous_secret_until",
                                    "disabled_reason"), record=Hook.from_row)

#: how long a rotated-out secret keeps signing deliveries beside the new one
ROTATION_GRACE = 24 * 3600


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
    given, so changing a URL never silently changes how deliveries are signed. A new secret
    is a rotation: the old one signs too for ``ROTATION_GRACE``. Setting ``active`` to true
    clears why the outbox deactivated the hook, and its failures so far."""
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
        if config["secret"] != current.config["secret"]:
            values.update(_rotation(current))
    if values.get("active"):
        values.update(failing_since=None, disabled_reason=None)
    return await HOOKS.update(session, partner_id=partner_id, account_id=account_id, item_id=item_id, values=values)


def _rotation(current: Hook) -> dict[str, Any]:
    return {"previous_secret": current.config["secret"], "previous_secret_until": now() + ROTATION_GRACE}


async def rotate_secret(
    session: Session, *, partner_id: int, account_id: int, item_id: int, secret: str | None = None
) -> Hook:
    """A new secret (``secret``, or a generated one) signs the hook's deliveries from now on;
    the old one signs them too for ``ROTATION_GRACE``, so receivers can switch without losing any."""
    current = await HOOKS.get(session, partner_id=partner_id, account_id=account_id, item_id=item_id)
    config = {**current.config, "secret": secret or new_secret()}
    problem = check_secret(config["secret"])
    if problem is None and config["secret"] == current.config["secret"]:
        problem = "must differ from the current secret"
    if problem is not None:
        raise ValidationFailed([FieldError("secret", problem)])
    values = {"config": orjson.dumps(config).decode(), **_rotation(current)}  # only the secret changes
    return await HOOKS.update(session, partner_id=partner_id, account_id=account_id, item_id=item_id, values=values)
