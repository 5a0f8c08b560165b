"""Triggers (auto-messages): stored as validated; evaluated (a dry run) by the engine, rules.py."""

from __future__ import annotations

import datetime
from typing import Any

import orjson

from opensupp.accounts.children import ChildTable
from opensupp.accounts.service import not_found as account_not_found
from opensupp.db import Row, Session
from opensupp.officehours.rules import DEFAULT, tzinfo_of
from opensupp.timeutil import now
from opensupp.triggers import rules

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


# ----------------------------------------------------------------------------- evaluate (a dry run)

# One statement: the account (no row: not this
# partner's), its office-hours document (NULL: the default) and its triggers, by id.
_EVALUATE_SQL = (
    "SELECT o.document, t.id, t.active, t.name, t.event, t.only_once, t.constraints, t.conditions"
    " FROM accounts a LEFT JOIN office_hours o ON o.account_id = a.id"
    " LEFT JOIN triggers t ON t.account_id = a.id"
    " WHERE a.id = $1 AND a.partner_id = $2 ORDER BY t.id"
)
_STORED = ("id", "active", "name", "event", "only_once", "constraints", "conditions")

# Compiled triggers by id, each with the row it was compiled from (a row that differs is
# compiled again, so the cache is never stale), cleared when full. Decisions are not
# cached: a visitor's clocks and page differ from request to request, and a cache keyed on
# them cost more in misses (and in the collector's time over its entries) than it saved.
_MAX_COMPILED = 10_000
_compiled: dict[int, tuple[tuple[Any, ...], rules.CompiledTrigger]] = {}


def _compile(row: tuple[Any, ...]) -> rules.CompiledTrigger:
    """The trigger of a row (as a tuple), compiled and cached."""
    stored = dict(zip(_STORED, row))
    try:
        stored["conditions"] = orjson.loads(stored["conditions"])
        compiled = rules.compile_trigger(stored)
    except ValueError as exc:
        compiled = rules.unusable(stored, f"conditions: cannot be evaluated ({exc})")
    if len(_compiled) >= _MAX_COMPILED:
        _compiled.clear()
    _compiled[row[0]] = (row, compiled)
    return compiled


async def evaluate_triggers(
    session: Session, *, partner_id: int, account_id: int, event: str, at: datetime.datetime | None,
    visitor: dict[str, Any],
) -> dict[str, Any]:
    """Every trigger of the account, evaluated for ``visitor`` on ``event`` at ``at`` (default:
    now) in the account's office-hours timezone. Reads only."""
    rows = await session.fetch(_EVALUATE_SQL, account_id, partner_id)
    if not rows:
        raise account_not_found(account_id)
    timezone = orjson.loads(rows[0][0])["timezone"] if rows[0][0] else DEFAULT["timezone"]
    instant = at or datetime.datetime.fromtimestamp(now(), datetime.timezone.utc)
    ctx = rules.context(event, visitor, instant, tzinfo_of(timezone))
    decisions = []
    compiled = _compiled
    for row in rows:
        stored = row[1:]
        cached = compiled.get(stored[0])
        if cached is not None and cached[0] == stored:
            trigger = cached[1]
        elif stored[0] is None:  # the one row of an account without triggers
            break
        else:
            trigger = _compile(stored)
        decisions.append(rules.decide(trigger, ctx))
    return {"event": event, "at": _utc(instant), "timezone": timezone, "visitor": ctx.values, "triggers": decisions}


def _utc(instant: datetime.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, or the instant with its own offset where UTC leaves the calendar."""
    try:
        utc = instant.astimezone(datetime.timezone.utc)
    except (OverflowError, ValueError):
        return instant.isoformat(timespec="seconds")
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
