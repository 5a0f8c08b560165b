"""Triggers (auto-messages): stored as validated; evaluated (a dry run) by the engine, rules.py."""

from __future__ import annotations

import datetime
import functools
import weakref
from typing import Any

import orjson

from opensupp.accounts.children import ChildTable
from opensupp.accounts.service import not_found as account_not_found
from opensupp.db import Row, Session
from opensupp.officehours.rules import DEFAULT, tzinfo_of
from opensupp.timeutil import now
from opensupp.triggers import rules
from opensupp.triggers.plan import Plan

TRIGGERS = ChildTable(
    "triggers", "trigger",
    ("id", "active", "name", "description", "event", "only_once", "constraints", "conditions", "actions"),
    version="version",
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

# What the plan of an account is cached under, its triggers' "fingerprint": equal ones, equal
# triggers. Read with the account (no row: not this partner's) and its office-hours document
# (NULL: the default) in one statement.
# - SQLite: accounts.triggers_revision, which the database increments with every write to
#   the account's triggers (migration 0004); one column, whatever the number of triggers.
# - PostgreSQL: "id.version,..." of the account's triggers by id (NULL: none), read from the
#   index (account_id, id, version). Ids are never reused and a row's version grows with
#   each update (migration 0003), so no row is shared by all writes: a shared counter would
#   make concurrent writers to one account's triggers wait for each other's commits.
#   (Not count, max id and a sum: a lower id can commit after a higher one, and a delete in
#   between can balance the count.)
_FINGERPRINT = {
    "sqlite": "a.triggers_revision",
    "postgresql": "(SELECT string_agg(id || '.' || version, ',' ORDER BY id) FROM triggers WHERE account_id = $1)",
}
_ACCOUNT_SQL = {
    dialect: f"SELECT o.document, {fingerprint} FROM accounts a LEFT JOIN office_hours o ON o.account_id = a.id"
             " WHERE a.id = $1 AND a.partner_id = $2"
    for dialect, fingerprint in _FINGERPRINT.items()
}
# The account's triggers by id, and the fingerprint of what was read, in one statement (one
# snapshot: a plan's fingerprint is never taken from an earlier statement). SQLite: the
# revision on every row, and one row of NULLs for an account with no triggers; PostgreSQL:
# the fingerprint is spelled from the rows (``_fingerprint``).
_COLUMNS = "version, id, active, name, event, only_once, constraints, conditions"
_TRIGGERS_SQL = {
    "sqlite": f"SELECT a.triggers_revision, {', '.join('t.' + c for c in _COLUMNS.split(', '))}"
              " FROM accounts a LEFT JOIN triggers t ON t.account_id = a.id WHERE a.id = $1 ORDER BY t.id",
    "postgresql": f"SELECT NULL, {_COLUMNS} FROM triggers WHERE account_id = $1 ORDER BY id",
}
_STORED = ("id", "active", "name", "event", "only_once", "constraints", "conditions")

# Compiled triggers by id, each with the row it was compiled from (a row that differs is
# compiled again), so that a plan rebuilt after one trigger changed compiles only that one.
_MAX_COMPILED = 10_000
_compiled: dict[int, tuple[tuple[Any, ...], rules.CompiledTrigger]] = {}
_MAX_PLANNED = 50_000  # triggers in all in the plans kept


class _Plans:
    """Each account's plan with the fingerprint of the triggers it was built from, least
    recently used first, at most ``limit`` triggers in all. Decisions are never cached: a
    visitor's clocks and page differ from request to request."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: dict[int, tuple[Any, Plan]] = {}
        self.size = 0  # triggers in all

    def get(self, account_id: int, fingerprint: Any) -> Plan | None:
        item = self.items.pop(account_id, None)
        if item is None:
            return None
        if item[0] != fingerprint:
            self.size -= len(item[1].entries)
            return None
        self.items[account_id] = item  # now the most recently used
        return item[1]

    def put(self, account_id: int, fingerprint: Any, plan: Plan) -> None:
        old = self.items.pop(account_id, None)
        if old is not None:
            self.size -= len(old[1].entries)
        size = len(plan.entries)
        while self.items and self.size + size > self.limit:
            self.size -= len(self.items.pop(next(iter(self.items)))[1].entries)
        self.items[account_id] = (fingerprint, plan)
        self.size += size


_plans: weakref.WeakKeyDictionary[Any, _Plans] = weakref.WeakKeyDictionary()


def plans_of(db: Any) -> _Plans:
    """The plans of the accounts of one database (a process may serve, or test, several)."""
    plans = _plans.get(db)
    if plans is None:
        plans = _plans[db] = _Plans(_MAX_PLANNED)
    return plans


def _compile(row: tuple[Any, ...]) -> rules.CompiledTrigger:
    """The trigger of a row (as a tuple), compiled and cached."""
    cached = _compiled.get(row[0])
    if cached is not None and cached[0] == row:
        return cached[1]
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


def _fingerprint(rows: list[Row]) -> str | None:
    """PostgreSQL's fingerprint of the triggers read (``_TRIGGERS_SQL``: version, then id), as
    the database spells it."""
    return ",".join(f"{row[2]}.{row[1]}" for row in rows) or None


async def _plan(session: Session, plans: _Plans, account_id: int, fingerprint: Any) -> Plan:
    """The account's plan, built again when the fingerprint of its triggers differs."""
    plan = plans.get(account_id, fingerprint)
    if plan is None:
        rows = await session.fetch(_TRIGGERS_SQL[session.dialect], account_id)
        if session.dialect == "sqlite":  # (no row at all: the account is gone since; never matched)
            read = rows[0][0] if rows else None
            rows = [row for row in rows if row[2] is not None]
        else:
            read = _fingerprint(rows)
        plan = Plan([_compile(tuple(row[2:])) for row in rows], rules.EVENTS)
        plans.put(account_id, read, plan)
    return plan


async def evaluate_triggers(
    session: Session, *, plans: _Plans, partner_id: int, account_id: int, event: str, at: datetime.datetime | None,
    visitor: dict[str, Any],
) -> bytes:
    """Every trigger of the account, evaluated for ``visitor`` on ``event`` at ``at`` (default:
    now) in the account's office-hours timezone, with the ``plans`` of the session's database
    (``plans_of``), as the answer's JSON. Reads only."""
    row = await session.fetchrow(_ACCOUNT_SQL[session.dialect], account_id, partner_id)
    if row is None:
        raise account_not_found(account_id)
    plan = await _plan(session, plans, account_id, row[1])
    timezone = orjson.loads(row[0])["timezone"] if row[0] else DEFAULT["timezone"]
    instant, shown = (at, _utc(at)) if at is not None else _second(now())
    ctx = rules.context(event, visitor, instant, tzinfo_of(timezone))
    # the answer's JSON, written by the plan around its decisions (no copy of them into it)
    head = orjson.dumps({"event": event, "at": shown, "timezone": timezone, "visitor": ctx.values})
    return plan.run(ctx, head[:-1] + b',"triggers":', b"}")


@functools.lru_cache(maxsize=1)  # the requests of one second share it
def _second(t: int) -> tuple[datetime.datetime, str]:
    """The instant ``t`` (seconds since the epoch), and as the answer shows it."""
    instant = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return instant, _utc(instant)


def _utc(instant: datetime.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, or the instant with its own offset where UTC leaves the calendar."""
    try:
        utc = instant.astimezone(datetime.timezone.utc)
    except (OverflowError, ValueError):
        return instant.isoformat(timespec="seconds")
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
