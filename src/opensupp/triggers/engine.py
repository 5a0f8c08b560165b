"""The trigger engine: does a stored trigger fire for a visitor, now, after a wait, or not, and why.

Pure: no I/O and no clock. The instant and the account's timezone are parameters, so a
partner (and a test) can ask "what at 9:00 in Prague?". Split for speed:
``compile_trigger`` runs once per stored trigger (conditions checked by the catalogue
again, regular expressions compiled with RE2, string values casefolded, comparators
chosen); ``context`` resolves the situation (event, instant, timezone, visitor) once;
``plan.Plan`` walks many compiled triggers in it straight into the decisions' JSON (the
server's path, compiled by Cython); ``decide``, ``evaluate`` and ``evaluate_all`` answer
the same decisions as dicts.
``inputs`` says what a decision reads of the situation, so a caller may memoize decisions.
``reference.decide`` states the same decisions the plain way (dicts in, the decision out);
tests/test_trigger_reference.py holds this engine to it on random triggers and visitors.

The visitor context (``context``) uses the condition names where one exists, plus the two
clocks the delays wait on, ``seconds_on_site`` and ``seconds_on_page``, and
``fired_triggers``. Absent fields are those of a first-time visitor who has just opened
their first page (``FIRST_VISIT``), with three derived defaults: ``seconds_on_page`` is
``seconds_on_site`` (the first page), ``is_triggered`` is whether ``fired_triggers`` is
non-empty, ``is_visitor_send_message`` is whether the event is ``onmessage``. A string that
is None (unknown: no city) compares as ``""``.

Semantics:

- Gates, in this order: ``active`` false, another ``event``, ``only_once`` with the
  trigger's id in ``fired_triggers``: the trigger does not fire, ``why`` says which gate.
  The conditions are still evaluated, so the reasons show what they would give.
- ``all``: conditions are walked in order. A delay (``delay_site``/``delay_page`` with
  ``eq``, ``gte`` or ``gt``) is a wait: until its clock reaches the value (``gt``: the
  value + 1), ``max(0, value - clock)`` seconds; both clocks advance during every wait.
  Every condition after a delay is checked at the projected instant: the clocks advanced,
  ``hour_of_day``/``day_of_week``/``month_of_year`` at instant + wait, every other visitor
  field unchanged. A delay with ``lt``, ``lte`` or ``not_eq`` is a filter on its clock at
  that point, not a wait. The trigger fires after the total wait (``now`` when it is 0) if
  every filter holds.
- ``any``: each condition stands on its own, from now (delays do not chain): a filter that
  holds fires now, a wait fires when it has elapsed; the trigger fires at the earliest.
  So a filter after a delay is checked now, like any other filter.
- No conditions: fires now, under ``all`` and ``any`` alike (API.md: "fires for everyone").
- Comparisons: numbers as integers; ``eq``, ``not_eq``, ``contains``, ``not_contains``,
  ``start_with`` and ``not_start_with`` on strings ignore case (Unicode casefolding, so
  ``"/PRICING"`` equals ``"/pricing"`` and ``"CZ"`` ``"cz"``); ``regex`` is a search
  (anchor it with ``^``/``$``), case-sensitive unless the pattern says ``(?i)``, run by
  RE2 (linear time, no catastrophic backtracking); enums and booleans compare exactly.
- Time: ``hour_of_day`` 0-23, ``day_of_week`` 1 (Monday) to 7, ``month_of_year`` 0
  (January) to 11, in the tzinfo given (the account's office-hours timezone). An instant
  beyond the calendar (after year 9999) has no hour: such a condition does not hold.

A reason is ``{"name", "cmp", "expected", "actual", "ok"}``, one per condition in order
(``cmp`` is ``eq`` when the trigger left it out), plus ``"wait"``, the seconds a wait adds,
on a wait, and ``"at"``, the seconds from now when it is checked, on a condition checked
after a wait. A wait's ``actual`` is its clock when the wait starts, and it is always ``ok``.
"""

from __future__ import annotations

import datetime
import operator
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import orjson

from opensupp.triggers.catalogue import CONDITIONS, DEFAULT_COMPARATOR, compile_regex, validate_conditions
from opensupp.triggers.plan import CLOCK, FIELD, MAX_CLOCK, TIME, WAIT, Plan

EVENTS = ("onload", "onmessage", "onopen")
SITE_CLOCK, PAGE_CLOCK = "seconds_on_site", "seconds_on_page"

#: A first-time visitor who has just opened their first page (see the module's doc for the
#: three defaults derived from other fields).
FIRST_VISIT: dict[str, Any] = {
    SITE_CLOCK: 0, PAGE_CLOCK: 0, "number_of_visits": 1, "number_of_pages": 1, "number_of_chats": 0,
    "is_visitor_send_message": False, "is_visitor_served": False, "is_triggered": False,
    "visitor_group": "", "visitor_ip": "", "visitor_city": "", "visitor_country_code": "", "visitor_page_url": "",
    "visitor_page_title": "", "visitor_referer": "", "visitor_language": "", "account_status": "online",
    "fired_triggers": [],
}

# the keys of compiled conditions by kind (the kinds are plan.FIELD, TIME, WAIT and CLOCK)
_TIME_PARTS = {"hour_of_day": 0, "day_of_week": 1, "month_of_year": 2}
_CLOCKS = {"delay_site": 0, "delay_page": 1}
_WAITING = {"eq": 0, "gte": 0, "gt": 1}  # a delay with these comparators waits until value + this
_EVENT, _FIRED, _CALENDAR = "@event", "@fired", "@calendar"  # what ``inputs`` reads besides the visitor


def _comparator(cmp: str, expected: Any) -> Callable[[Any], bool]:
    """``test(actual)`` for ``actual <cmp> expected``; strings come casefolded, but for regex."""
    if cmp == "regex":
        return compile_regex(expected).search
    if cmp == "eq":
        return expected.__eq__
    if cmp == "not_eq":
        return expected.__ne__
    if cmp == "gt":
        return expected.__lt__
    if cmp == "gte":
        return expected.__le__
    if cmp == "lt":
        return expected.__gt__
    if cmp == "lte":
        return expected.__ge__
    if cmp == "contains":
        return lambda actual: expected in actual
    if cmp == "start_with":
        return lambda actual: actual.startswith(expected)
    if cmp == "not_contains":
        return lambda actual: expected not in actual
    if cmp == "not_start_with":
        return lambda actual: not actual.startswith(expected)
    raise ValueError(f"unknown comparator {cmp!r}")


#: (kind, key, test, head, folded, why): ``key`` is the visitor field, the part of the
#: local time or the clock (0 site, 1 page); a wait's ``test`` is its threshold; ``head`` is
#: the start of its reasons, ``{"name", "cmp", "expected"}``, copied for each; ``why`` the
#: start of the sentence when it does not hold.
Condition = tuple[int, Any, Any, dict[str, Any], bool, str]


def _compile_condition(condition: dict[str, Any]) -> Condition:
    """One condition as the catalogue normalized it."""
    name, expected = condition["name"], condition["value"]
    cmp = condition.get("cmp", DEFAULT_COMPARATOR)
    spec = CONDITIONS[name]
    head = {"name": name, "cmp": cmp, "expected": expected}
    why = f"conditions: {name} {cmp} {_json(expected)} does not hold"
    if spec.delay:
        clock = _CLOCKS[name]
        if cmp in _WAITING:
            return (WAIT, clock, expected + _WAITING[cmp], head, False, why)
        return (CLOCK, clock, _comparator(cmp, expected), head, False, why)
    folded = spec.type == "string" and cmp != "regex"
    test = _comparator(cmp, expected.casefold() if folded else expected)
    if cmp == "regex":  # RE2 on the UTF-8 bytes: the same matches, and its str path is far slower
        search = test
        test = lambda actual: search(actual.encode()) is not None  # noqa: E731
    if name in _TIME_PARTS:
        return (TIME, _TIME_PARTS[name], test, head, False, why)
    return (FIELD, name, test, head, folded, why)


class Shared:
    """An interned condition: held by the compiled triggers that use it, and only weakly by
    ``_INTERNED``, so it lives exactly as long as one of them (a cached plan's, say)."""

    __slots__ = ("condition", "__weakref__")

    def __init__(self, condition: Condition) -> None:
        self.condition = condition


@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class CompiledTrigger:
    id: str
    name: str
    active: bool
    event: str
    only_once: bool
    any: bool  # constraints: any
    conditions: tuple[Condition, ...]
    problem: str | None = None  # why it cannot be evaluated (set by ``unusable``)
    inputs: Callable[[dict[str, Any]], Any] = operator.itemgetter(_EVENT)  # see ``inputs``
    shared: tuple[Shared, ...] = ()  # what keeps its interned conditions alive


#: equal conditions (name, cmp, value) -> their one compiled object, while a trigger holds it
_INTERNED: weakref.WeakValueDictionary[str, Shared] = weakref.WeakValueDictionary()


def _interned(condition: dict[str, Any]) -> Shared:
    """The one compiled object for equal conditions (name, cmp, value), so that a context
    evaluates a condition that many triggers share once (``plan.Plan``)."""
    key = orjson.dumps(condition, option=orjson.OPT_SORT_KEYS).decode()
    shared = _INTERNED.get(key)
    if shared is None:
        shared = _INTERNED[key] = Shared(_compile_condition(condition))
    return shared


def compile_trigger(stored: Mapping[str, Any]) -> CompiledTrigger:
    """A trigger as stored and answered by the API (``id``, ``active``, ``name``, ``event``,
    ``only_once``, ``constraints``, ``conditions``). The conditions are checked by the
    catalogue again (the one that checked them on write): ValueError names what it refuses."""
    normalized, errors = validate_conditions(stored["conditions"])
    if errors:
        raise ValueError("; ".join(f"{e.field}: {e.message}" for e in errors))
    shared = tuple(_interned(c) for c in normalized)
    conditions = tuple(s.condition for s in shared)
    only_once = bool(stored["only_once"])
    return CompiledTrigger(
        str(stored["id"]), stored["name"], bool(stored["active"]), stored["event"], only_once,
        stored["constraints"] == "any", conditions, None, operator.itemgetter(*_reads(conditions, only_once)), shared,
    )


def _reads(conditions: tuple[Condition, ...], only_once: bool) -> list[str]:
    """The names, in ``inputs``' view of a context, of everything a decision on these conditions reads."""
    kinds = {c[0] for c in conditions}
    names = [_EVENT] + ([_FIRED] if only_once else []) + sorted({c[1] for c in conditions if c[0] == FIELD})
    if kinds & {WAIT, CLOCK}:
        names += [SITE_CLOCK, PAGE_CLOCK]
    if TIME in kinds:
        names.append(_CALENDAR)
    return names


def unusable(stored: Mapping[str, Any], problem: str) -> CompiledTrigger:
    """A trigger whose conditions cannot be compiled: it never fires, and says why."""
    return CompiledTrigger(str(stored["id"]), stored["name"], False, stored["event"], True, False, (), problem)


# ----------------------------------------------------------------------------- the situation


class Calendar:
    """The local (hour, ISO weekday, month - 1) at instant + t, computed once per t."""

    __slots__ = ("instant", "tz", "cache")

    def __init__(self, instant: datetime.datetime, tz: datetime.tzinfo) -> None:
        if instant.tzinfo is None:
            raise ValueError("the instant must be timezone-aware")
        self.instant, self.tz = instant, tz
        self.cache: dict[int, tuple[int, int, int] | None] = {}

    def at(self, t: int) -> tuple[int, int, int] | None:
        try:
            return self.cache[t]
        except KeyError:
            pass
        local: tuple[int, int, int] | None
        try:
            moment = (self.instant + datetime.timedelta(seconds=t) if t else self.instant).astimezone(self.tz)
            local = (moment.hour, moment.isoweekday(), moment.month - 1)
        except (OverflowError, ValueError):
            local = None  # beyond the calendar
        self.cache[t] = local
        return local


@dataclass(slots=True)  # not frozen: built once per evaluation, and frozen slots cost a setattr each
class Context:
    """One evaluation's situation: the event, the calendar and the visitor, resolved.
    ``values`` has every visitor field (``plan`` casefolds the strings it compares)."""

    event: str
    calendar: Calendar
    values: dict[str, Any]
    fired: frozenset[str]
    site: int
    page: int


_NONE_FIRED: frozenset[str] = frozenset()


def context(event: str, visitor: Mapping[str, Any], instant: datetime.datetime, tz: datetime.tzinfo) -> Context:
    """The situation of ``visitor`` on ``event`` at ``instant`` in ``tz``: ``FIRST_VISIT`` where a
    field is absent, the derived defaults, and None strings as ``""``. The clocks must be in
    0..MAX_CLOCK (the API's bound), or ValueError."""
    values = {**FIRST_VISIT, **visitor}
    if None in visitor.values():  # null: as if absent
        values = {**FIRST_VISIT, **{k: v for k, v in visitor.items() if v is not None}}
    values["fired_triggers"] = list(map(str, values["fired_triggers"]))
    if visitor.get(PAGE_CLOCK) is None:
        values[PAGE_CLOCK] = values[SITE_CLOCK]
    if visitor.get("is_triggered") is None:
        values["is_triggered"] = bool(values["fired_triggers"])
    if visitor.get("is_visitor_send_message") is None:
        values["is_visitor_send_message"] = event == "onmessage"
    site, page = values[SITE_CLOCK], values[PAGE_CLOCK]
    if not (0 <= site <= MAX_CLOCK and 0 <= page <= MAX_CLOCK):
        raise ValueError(f"{SITE_CLOCK} and {PAGE_CLOCK} must be in 0..{MAX_CLOCK}")
    fired = frozenset(values["fired_triggers"]) if values["fired_triggers"] else _NONE_FIRED
    return Context(event, Calendar(instant, tz), values, fired, site, page)


# ----------------------------------------------------------------------------- deciding


class Decision(TypedDict):
    """``fires``: ``now``, ``later`` (after ``after`` seconds) or ``never`` (not on this
    event; ``why`` says why); ``after`` is 0 for now and None for never. A plain dict, so
    that it serializes as it is."""

    id: str
    name: str
    fires: str
    after: int | None
    why: str | None
    reasons: list[dict[str, Any]]


def evaluate(
    trigger: CompiledTrigger, event: str, instant: datetime.datetime, tz: datetime.tzinfo, visitor: Mapping[str, Any]
) -> Decision:
    """Does ``trigger`` fire on ``event`` at ``instant`` (aware) for ``visitor``, with time
    conditions taken in ``tz``; and why."""
    return decide(trigger, context(event, visitor, instant, tz))


def evaluate_all(
    triggers: Iterable[CompiledTrigger], event: str, instant: datetime.datetime, tz: datetime.tzinfo,
    visitor: Mapping[str, Any],
) -> list[Decision]:
    """``evaluate`` for each trigger, sharing one ``context``."""
    return orjson.loads(Plan(triggers, EVENTS).run(context(event, visitor, instant, tz)))


def inputs(trigger: CompiledTrigger, ctx: Context) -> Any:
    """Everything ``decide(trigger, ctx)`` reads of ``ctx``, hashable: equal inputs give
    equal decisions, so a caller may memoize decisions on ``(trigger, inputs)``."""
    calendar = ctx.calendar
    seen = {**ctx.values, _EVENT: ctx.event, _FIRED: ctx.fired, _CALENDAR: (calendar.instant, calendar.tz)}
    return trigger.inputs(seen)


def decide(trigger: CompiledTrigger, ctx: Context) -> Decision:
    """The decision for one trigger in a ``context``."""
    return orjson.loads(Plan((trigger,), EVENTS).run(ctx))[0]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
