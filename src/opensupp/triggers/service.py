"""Triggers (auto-messages): stored as validated; evaluated (a dry run) by the engine, engine.py."""

from __future__ import annotations

import datetime
import functools
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from opensupp import lane
from opensupp.db import Row, Session
from opensupp.db.children import ChildTable, account_not_found
from opensupp.errors import Conflict
from opensupp.officehours.validation import DEFAULT, tzinfo_of
from opensupp.timeutil import now
from opensupp.triggers import engine
from opensupp.triggers.catalogue import REGEX_MAX_MEM, regex_instructions
from opensupp.triggers.models import Trigger
from opensupp.triggers.plan import Plan

TRIGGERS = ChildTable(
    "triggers", "trigger",
    ("id", "active", "name", "description", "event", "only_once", "constraints", "conditions", "actions"),
    version="version", page_bytes=1024 * 1024, record=Trigger.from_row,
)
_JSON = ("conditions", "actions")


def _encoded(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: orjson.dumps(v).decode() if k in _JSON else v for k, v in fields.items()}


async def create_trigger(
    session: Session, *, partner_id: int, account_id: int, name: str, actions: list[dict[str, Any]],
    active: bool = True, description: str = "", event: str = "onload", only_once: bool = True,
    constraints: str = "all", conditions: list[dict[str, Any]] | None = None,
) -> Trigger:
    values = _encoded({
        "active": active, "name": name, "description": description, "event": event, "only_once": only_once,
        "constraints": constraints, "conditions": conditions or [], "actions": actions, "created_at": now(),
    })
    return await TRIGGERS.insert(session, partner_id=partner_id, account_id=account_id, values=values)


async def update_trigger(
    session: Session, *, partner_id: int, account_id: int, item_id: int, changes: dict[str, Any]
) -> Trigger:
    return await TRIGGERS.update(
        session, partner_id=partner_id, account_id=account_id, item_id=item_id, values=_encoded(changes)
    )


# ----------------------------------------------------------------------------- evaluate (a dry run)

#: The most triggers evaluate answers for: its work and its answer (up to 100 reasons a
#: trigger) grow with them. An account with more gets a 409 that says so.
MAX_EVALUATED = 1000
#: An evaluation's work, in units of about 10 ns on this project's machine class (a regex
#: search costs up to its RE2 instructions times the bytes searched, each a unit; see
#: ``Planned.work``). Up to ``LOOP_WORK`` it runs on the event loop; above, in the
#: evaluation lane (one thread per process, ``_LANE``), so that no request holds the loop
#: for more than a few milliseconds; above ``MAX_WORK`` it is refused (409).
LOOP_WORK = 500_000
MAX_WORK = 200_000_000
#: Microseconds of compiling a plan may take on the event loop (``_compile_cost``); more: the lane.
LOOP_COMPILE_US = 5000
#: Bytes charged for a cached plan (``Planned.charge``), measured with tracemalloc; RE2's
#: own memory (outside Python's allocator) is charged at its budget, ``REGEX_MAX_MEM``.
_PLAN_BYTES, _TRIGGER_BYTES, _CHECK_BYTES = 2048, 4096, 1024

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
#: the same for the chat runtime, which knows the account by its key (no partner to check)
_ACCOUNT_SQL_ANY = {dialect: sql.replace(" AND a.partner_id = $2", "") for dialect, sql in _ACCOUNT_SQL.items()}
# The account's triggers by id (at most $2), and the fingerprint of what was read, in one
# statement (one snapshot: a plan's fingerprint is never taken from an earlier statement).
# SQLite: the revision on every row, and one row of NULLs for an account with no triggers;
# PostgreSQL: the fingerprint is spelled from the rows (``_fingerprint``).
_COLUMNS = "version, id, active, name, event, only_once, constraints, conditions"
_TRIGGERS_SQL = {
    "sqlite": f"SELECT a.triggers_revision, {', '.join('t.' + c for c in _COLUMNS.split(', '))}"
              " FROM accounts a LEFT JOIN triggers t ON t.account_id = a.id WHERE a.id = $1 ORDER BY t.id LIMIT $2",
    "postgresql": f"SELECT NULL, {_COLUMNS} FROM triggers WHERE account_id = $1 ORDER BY id LIMIT $2",
}


class Stored(NamedTuple):
    """What evaluating reads of a stored trigger (``_TRIGGERS_SQL``, from ``id``): equal ones
    compile to equal triggers."""

    id: int
    active: bool
    name: str
    event: str
    only_once: bool
    constraints: str
    conditions: str  # JSON, as stored


class _Compiled:
    """A trigger compiled from what was read of it (read differently, it is compiled again)."""

    __slots__ = ("source", "trigger", "__weakref__")

    def __init__(self, source: Stored, trigger: engine.CompiledTrigger) -> None:
        self.source = source
        self.trigger = trigger


#: Compiled triggers by id, while a cached plan holds them (weakly here: the plans' budget
#: bounds them), so that a plan rebuilt after one trigger changed compiles only that one,
#: and accounts with equal triggers share their compiled conditions (``engine._INTERNED``).
_compiled: weakref.WeakValueDictionary[int, _Compiled] = weakref.WeakValueDictionary()


@dataclass(slots=True, eq=False)
class Planned:
    """An account's plan, with what it was built from and what running it costs."""

    fingerprint: Any
    plan: Plan
    compiled: list[_Compiled]  # keeps them (and their RE2 objects) alive while cached
    regex: dict[str, int]  # RE2 instructions of its distinct regex conditions, by visitor field
    base_work: int  # units of work a run costs besides its regex searches
    charge: int  # bytes it is taken to hold, against the cache's budget

    def work(self, values: dict[str, Any]) -> int:
        """The most units of work a run for these visitor ``values`` can take: a regex search
        costs at most its instructions times the bytes searched (RE2's worst case, when its
        DFA gives up and it simulates the program), about 10 ns each."""
        return self.base_work + sum(size * (len(values[field].encode()) + 1) for field, size in self.regex.items())


class Plans:
    """Each account's ``Planned``, least recently used first, charged at most ``budget``
    bytes in all (``OPENSUPP_TRIGGER_CACHE_MB``); every plan is charged something, an
    account without triggers too. Decisions are never cached: a visitor's clocks and page
    differ from request to request."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.items: dict[int, Planned] = {}
        self.size = 0  # bytes charged in all

    def get(self, account_id: int, fingerprint: Any) -> Planned | None:
        item = self.items.pop(account_id, None)
        if item is None:
            return None
        if item.fingerprint != fingerprint:
            self.size -= item.charge
            return None
        self.items[account_id] = item  # now the most recently used
        return item

    def put(self, account_id: int, item: Planned) -> None:
        old = self.items.pop(account_id, None)
        if old is not None:
            self.size -= old.charge
        while self.items and self.size + item.charge > self.budget:
            self.size -= self.items.pop(next(iter(self.items))).charge
        if item.charge <= self.budget:
            self.items[account_id] = item
            self.size += item.charge


_plans: weakref.WeakKeyDictionary[Any, Plans] = weakref.WeakKeyDictionary()


def plans_of(db: Any, budget: int) -> Plans:
    """The plans of the accounts of one database (a process may serve, or test, several),
    cached within ``budget`` bytes (the first call's)."""
    plans = _plans.get(db)
    if plans is None:
        plans = _plans[db] = Plans(budget)
    return plans


def _compile(source: Stored) -> _Compiled:
    """The trigger read, compiled, or the one compiled already."""
    cached = _compiled.get(source.id)
    if cached is not None and cached.source == source:
        return cached
    stored = source._asdict()
    try:
        stored["conditions"] = orjson.loads(stored["conditions"])
        trigger = engine.compile_trigger(stored)
    except ValueError as exc:
        trigger = engine.unusable(stored, f"conditions: cannot be evaluated ({exc})")
    compiled = _compiled[source.id] = _Compiled(source, trigger)
    return compiled


def _build(sources: list[Stored], fingerprint: Any, breathe: bool = False) -> Planned:
    """The plan of these triggers, and what it costs."""
    compiled = [_compile(source) for source in sources]
    triggers = [c.trigger for c in compiled]
    plan = Plan(triggers, engine.EVENTS, breathe)
    regex: dict[str, int] = {}  # by visitor field
    searches = set()  # the distinct regex conditions (interned: equal ones are one object)
    reasons = 0
    for trigger in triggers:
        reasons += len(trigger.conditions)
        for condition in trigger.conditions:
            field, head = condition[1], condition[3]
            if head["cmp"] == "regex" and id(condition) not in searches:
                searches.add(id(condition))
                regex[field] = regex.get(field, 0) + regex_instructions(head["expected"])
    base_work = 100 * len(triggers) + 30 * reasons + 30 * len(plan.checks)
    charge = (_PLAN_BYTES + _TRIGGER_BYTES * len(triggers) + _CHECK_BYTES * len(plan.checks)
              + REGEX_MAX_MEM * len(searches))
    return Planned(fingerprint, plan, compiled, regex, base_work, charge)


def _compile_cost(sources: list[Stored]) -> float:
    """About how many microseconds compiling the triggers not compiled yet takes (measured on this
    project's machine class: 30 a trigger, 0.3 a byte of its conditions, 600 a regular
    expression at most, compiled twice: checked, then for the engine)."""
    cost = 0.0
    for source in sources:
        cached = _compiled.get(source.id)
        if cached is None or cached.source != source:
            conditions = source.conditions
            cost += 30 + 0.3 * len(conditions) + 600 * conditions.count('"regex"')
    return cost


def _fingerprint(rows: list[Row]) -> str | None:
    """PostgreSQL's fingerprint of the triggers read (``_TRIGGERS_SQL``: version, then id), as
    the database spells it."""
    return ",".join(f"{trigger_id}.{version}" for _, version, trigger_id, *_ in rows) or None


async def _planned(session: Session, plans: Plans, account_id: int, fingerprint: Any) -> Planned:
    """The account's plan, built again when the fingerprint of its triggers differs."""
    planned = plans.get(account_id, fingerprint)
    if planned is not None:
        return planned
    # each row: the SQLite revision (PostgreSQL: NULL), the version, then the ``Stored`` columns
    rows = await session.fetch(_TRIGGERS_SQL[session.dialect], account_id, MAX_EVALUATED + 1)
    if session.dialect == "sqlite":  # (no row at all: the account is gone since; never matched)
        read = rows[0][0] if rows else None
        rows = [row for row in rows if row[2] is not None]
    else:
        read = _fingerprint(rows)
    if len(rows) > MAX_EVALUATED:
        raise Conflict(f"Account {account_id} has more than {MAX_EVALUATED} triggers; evaluate answers for at most "
                       f"{MAX_EVALUATED}.")
    sources = [Stored(*stored) for _, _, *stored in rows]
    if _compile_cost(sources) > LOOP_COMPILE_US:
        planned = await lane.run(_build, sources, read, True)
    else:
        planned = _build(sources, read)
    plans.put(account_id, planned)
    return planned


async def evaluate_triggers(
    session: Session, *, plans: Plans, partner_id: int | None, account_id: int, event: str,
    at: datetime.datetime | None, visitor: Mapping[str, Any],
) -> bytes:
    """Every trigger of the account, evaluated for ``visitor`` on ``event`` at ``at`` (default:
    now) in the account's office-hours timezone, with the ``plans`` of the session's database
    (``plans_of``), as the answer's JSON. Reads only. ``partner_id`` None: the chat runtime's
    own evaluation, for an account it holds a visitor of."""
    if partner_id is None:
        account = await session.fetchrow(_ACCOUNT_SQL_ANY[session.dialect], account_id)
    else:
        account = await session.fetchrow(_ACCOUNT_SQL[session.dialect], account_id, partner_id)
    if account is None:
        raise account_not_found(account_id)
    office_hours, fingerprint = account
    planned = await _planned(session, plans, account_id, fingerprint)
    timezone = orjson.loads(office_hours)["timezone"] if office_hours else DEFAULT["timezone"]
    instant, shown = (at, _utc(at)) if at is not None else _second(now())
    ctx = engine.context(event, visitor, instant, tzinfo_of(timezone))
    # the answer's JSON, written by the plan around its decisions (no copy of them into it)
    head = orjson.dumps({"event": event, "at": shown, "timezone": timezone, "visitor": ctx.values})
    prefix = head[:-1] + b',"triggers":'
    if not planned.regex and planned.base_work <= LOOP_WORK:
        return planned.plan.run(ctx, prefix, b"}")
    work = planned.work(ctx.values)
    if work > MAX_WORK:
        raise Conflict(f"Evaluating account {account_id}'s triggers for this visitor could take {work // 100_000} ms "
                       f"(their regular expressions on these strings); at most {MAX_WORK // 100_000} ms are allowed. "
                       "Use fewer or simpler regular expressions, or shorter visitor strings.")
    if work <= LOOP_WORK:
        return planned.plan.run(ctx, prefix, b"}")
    return await lane.run(planned.plan.run, ctx, prefix, b"}", True)


async def listens(session: Session, *, plans: Plans, account_id: int, event: str) -> bool:
    """Whether the account has an active trigger on ``event`` (the chat runtime asks before it
    reads a visitor's context: most messages and pages have nothing to evaluate). One read of
    the account's row; the plan is the one ``evaluate_triggers`` uses, cached."""
    account = await session.fetchrow(_ACCOUNT_SQL_ANY[session.dialect], account_id)
    if account is None:
        return False
    planned = await _planned(session, plans, account_id, account[1])
    return any(c.source.active and c.source.event == event for c in planned.compiled)


async def trigger_actions(session: Session, *, account_id: int, trigger_id: int) -> list[dict[str, Any]] | None:
    """A trigger's actions (``[{"name": "message", "agent_nick", "message"}]``), if it is still
    the account's and active."""
    row = await session.fetchrow("SELECT actions, active FROM triggers WHERE id = $1 AND account_id = $2",
                                 trigger_id, account_id)
    if row is None or not row[1]:
        return None
    actions: list[dict[str, Any]] = orjson.loads(row[0])
    return actions


@functools.lru_cache(maxsize=1)  # the requests of one second share it
def _second(t: int) -> tuple[datetime.datetime, str]:
    """The instant ``t`` (seconds since the epoch), and as the answer shows it."""
    instant = datetime.datetime.fromtimestamp(t, datetime.UTC)
    return instant, _utc(instant)


def _utc(instant: datetime.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, or the instant with its own offset where UTC leaves the calendar."""
    try:
        utc = instant.astimezone(datetime.UTC)
    except (OverflowError, ValueError):
        return instant.isoformat(timespec="seconds")
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"
