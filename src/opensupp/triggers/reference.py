"""A plain, readable statement of what a trigger decision is: dicts in, the decision out.

The server decides with the compiled engine (``engine.compile_trigger``, ``engine.context``,
``plan.Plan.run``), which is built for speed: conditions interned and shared, strings
casefolded once, decisions written as JSON bytes. This module says the same thing the
slow way, for a reader, and is what the engine is held to (tests/test_trigger_reference.py
compares the two on random triggers and visitors). It shares nothing with the engine but
the catalogue: the condition specs (each name's type and whether it is a delay) and its
validation, which decides whether a stored trigger can be evaluated at all.

``decide(trigger, visitor, event=..., now=..., timezone=...)`` takes a trigger as the API
stores and answers it, the ``visitor`` object of an evaluate request, the event, the
instant and the account's office-hours timezone (hours, like ``5.5``, or an IANA name), and
answers one element of evaluate's ``triggers``::

    {"id", "name", "fires": "now" | "later" | "never", "after", "why", "reasons": [...]}

The rules, as API.md and the engine's documentation state them:

- The visitor: an absent or null field is that of a first-time visitor who has just opened
  their first page (``FIRST_VISIT``); ``seconds_on_page`` defaults to ``seconds_on_site``,
  ``is_triggered`` to whether ``fired_triggers`` is non-empty, ``is_visitor_send_message``
  to whether the event is ``onmessage``. Numbers may come as decimal strings and booleans as
  ``"true"``/``"false"``/``"1"``/``"0"`` (API.md's fine print).
- ``constraints: all``: the conditions are walked in order, from now. A delay
  (``delay_site``/``delay_page``) with ``eq``, ``gte`` or ``gt`` is a wait until its clock
  reaches the value (``gt``: the value + 1); both clocks advance while waiting, and every
  later condition is checked that many seconds from now (the time conditions at that
  instant too). A delay with another comparator is a filter on its clock. The trigger fires
  after the total wait if every condition holds; else never, and ``why`` names the first
  one that does not hold.
- ``constraints: any``: each condition on its own, from now: one that holds fires now, a
  wait fires when it ends; the trigger fires at the earliest, or never when none holds.
- No conditions: fires now.
- Comparisons: numbers as integers; strings casefolded for ``eq``, ``not_eq``,
  ``contains``, ``not_contains``, ``start_with``, ``not_start_with``; ``regex`` is an RE2
  search on the string as it is (case-sensitive unless the pattern says ``(?i)``); enums and
  booleans exactly.
- Time: ``hour_of_day`` 0-23, ``day_of_week`` 1 (Monday) to 7, ``month_of_year`` 0
  (January) to 11, in the timezone; an instant past the calendar has none, and the condition
  does not hold (its ``actual`` is null).
- Gates, after the conditions (whose reasons are answered anyway): ``active`` false, another
  ``event``, then ``only_once`` with the trigger's id in ``fired_triggers`` make it never
  fire, ``why`` saying which. A trigger whose stored conditions the catalogue refuses never
  fires, with no reasons, whatever its gates.
- A reason: ``{"name", "cmp", "expected", "actual", "ok"}`` (``cmp`` ``eq`` when left out),
  plus ``"at"``, the seconds from now when it is checked, when that is not now, and
  ``"wait"``, the seconds it waits, on a wait (which always holds; its ``actual`` is its clock
  when the wait starts).
"""

from __future__ import annotations

import datetime
import json
import zoneinfo
from typing import Any

import re2

from opensupp.triggers.catalogue import CONDITIONS, validate_conditions

FIRST_VISIT: dict[str, Any] = {
    "seconds_on_site": 0,
    "seconds_on_page": 0,
    "number_of_visits": 1,
    "number_of_pages": 1,
    "number_of_chats": 0,
    "is_visitor_send_message": False,
    "is_visitor_served": False,
    "is_triggered": False,
    "visitor_group": "",
    "visitor_ip": "",
    "visitor_city": "",
    "visitor_country_code": "",
    "visitor_page_url": "",
    "visitor_page_title": "",
    "visitor_referer": "",
    "visitor_language": "",
    "account_status": "online",
    "fired_triggers": [],
}
CLOCK_OF_DELAY = {"delay_site": "seconds_on_site", "delay_page": "seconds_on_page"}
WAITING_COMPARATORS = ("eq", "gte", "gt")  # a delay with one of these waits; with another, it is a filter
CASEFOLDED_COMPARATORS = ("eq", "not_eq", "contains", "not_contains", "start_with", "not_start_with")


def decide(
    trigger: dict[str, Any], visitor: dict[str, Any], *, event: str, now: datetime.datetime, timezone: float | str
) -> dict[str, Any]:
    """The decision for ``trigger`` (as stored) and ``visitor`` (as an evaluate request sends
    it) on ``event`` at ``now`` (timezone-aware), time conditions taken in ``timezone``."""
    problem = _why_unusable(trigger["conditions"])
    if problem is not None:
        return _decision(trigger, "never", None, problem, [])

    situation = _situation(visitor, event)
    zone = _zone(timezone)
    conditions = [_read_condition(c) for c in trigger["conditions"]]
    if trigger["constraints"] == "any":
        fires, after, why, reasons = _any(conditions, situation, now, zone)
    else:
        fires, after, why, reasons = _all(conditions, situation, now, zone)

    trigger_id = str(trigger["id"])
    if not trigger["active"]:
        return _decision(trigger, "never", None, "inactive: the trigger's active is false", reasons)
    if trigger["event"] != event:
        return _decision(trigger, "never", None, f"event: the trigger runs {trigger['event']}, not {event}", reasons)
    if trigger["only_once"] and trigger_id in situation["fired_triggers"]:
        why = f"only_once: trigger {trigger_id} has already fired for this visitor (fired_triggers)"
        return _decision(trigger, "never", None, why, reasons)
    return _decision(trigger, fires, after, why, reasons)


def _decision(trigger: dict[str, Any], fires: str, after: int | None, why: str | None, reasons: list) -> dict[str, Any]:
    return {"id": str(trigger["id"]), "name": trigger["name"], "fires": fires, "after": after, "why": why,
            "reasons": reasons}


def _why_unusable(conditions: Any) -> str | None:
    """Why the catalogue refuses the stored conditions (they were checked on write, but the
    catalogue may have changed since), or None."""
    errors = validate_conditions(conditions)[1]
    if not errors:
        return None
    return "conditions: cannot be evaluated (" + "; ".join(f"{e.field}: {e.message}" for e in errors) + ")"


# ----------------------------------------------------------------------------- constraints


def _all(conditions: list[dict], situation: dict, now: datetime.datetime, zone: datetime.tzinfo) -> tuple:
    """Every condition in order; waits add up, and what follows a wait is checked when it ends."""
    reasons = []
    seconds_from_now = 0
    first_failure = None
    for condition in conditions:
        reason, wait = _check(condition, situation, seconds_from_now, now, zone)
        reasons.append(reason)
        seconds_from_now += wait
        if not reason["ok"] and first_failure is None:
            first_failure = reason
    if first_failure is not None:
        return "never", None, _does_not_hold(first_failure), reasons
    if seconds_from_now == 0:
        return "now", 0, None, reasons
    return "later", seconds_from_now, None, reasons


def _any(conditions: list[dict], situation: dict, now: datetime.datetime, zone: datetime.tzinfo) -> tuple:
    """Each condition on its own, from now; the earliest that holds decides."""
    reasons = []
    soonest = None
    for condition in conditions:
        reason, wait = _check(condition, situation, 0, now, zone)
        reasons.append(reason)
        if reason["ok"] and (soonest is None or wait < soonest):
            soonest = wait
    if not conditions:
        return "now", 0, None, reasons
    if soonest is None:
        return "never", None, f"conditions: none of the {len(conditions)} holds (constraints: any)", reasons
    if soonest == 0:
        return "now", 0, None, reasons
    return "later", soonest, None, reasons


def _does_not_hold(reason: dict) -> str:
    when = f" in {reason['at']} s" if "at" in reason else ""
    return (f"conditions: {reason['name']} {reason['cmp']} {_json(reason['expected'])} does not hold{when} "
            f"(actual: {_json(reason['actual'])})")


# ----------------------------------------------------------------------------- one condition


def _check(
    condition: dict, situation: dict, seconds_from_now: int, now: datetime.datetime, zone: datetime.tzinfo
) -> tuple[dict[str, Any], int]:
    """The reason for one condition checked ``seconds_from_now``, and the seconds it waits."""
    name, cmp, expected = condition["name"], condition["cmp"], condition["value"]
    reason: dict[str, Any] = {"name": name, "cmp": cmp, "expected": expected}
    wait = 0
    if name in CLOCK_OF_DELAY:
        clock = situation[CLOCK_OF_DELAY[name]] + seconds_from_now  # both clocks run while waiting
        reason["actual"] = clock
        if cmp in WAITING_COMPARATORS:
            until = expected + 1 if cmp == "gt" else expected
            wait = max(0, until - clock)
            reason["ok"] = True
        else:
            reason["ok"] = _compare(cmp, clock, expected)
    elif name in ("hour_of_day", "day_of_week", "month_of_year"):
        actual = _local_time_part(name, now, seconds_from_now, zone)
        reason["actual"] = actual
        reason["ok"] = actual is not None and _compare(cmp, actual, expected)
    else:
        actual = situation[name]
        reason["actual"] = actual
        if CONDITIONS[name].type == "string" and cmp in CASEFOLDED_COMPARATORS:
            reason["ok"] = _compare(cmp, actual.casefold(), expected.casefold())
        else:
            reason["ok"] = _compare(cmp, actual, expected)
    if seconds_from_now:
        reason["at"] = seconds_from_now
    if name in CLOCK_OF_DELAY and cmp in WAITING_COMPARATORS:
        reason["wait"] = wait
    return reason, wait


def _compare(cmp: str, actual: Any, expected: Any) -> bool:
    """``actual <cmp> expected``."""
    if cmp == "eq":
        return actual == expected
    if cmp == "not_eq":
        return actual != expected
    if cmp == "gt":
        return actual > expected
    if cmp == "gte":
        return actual >= expected
    if cmp == "lt":
        return actual < expected
    if cmp == "lte":
        return actual <= expected
    if cmp == "contains":
        return expected in actual
    if cmp == "not_contains":
        return expected not in actual
    if cmp == "start_with":
        return actual.startswith(expected)
    if cmp == "not_start_with":
        return not actual.startswith(expected)
    if cmp == "regex":
        return re2.search(expected, actual) is not None
    raise ValueError(f"unknown comparator {cmp!r}")


def _local_time_part(name: str, now: datetime.datetime, seconds_from_now: int, zone: datetime.tzinfo) -> int | None:
    """The hour (0-23), ISO weekday (1-7) or month (0-11) in ``zone``, ``seconds_from_now``
    after ``now``; None past the calendar."""
    try:
        local = (now + datetime.timedelta(seconds=seconds_from_now)).astimezone(zone)
    except (OverflowError, ValueError):
        return None
    if name == "hour_of_day":
        return local.hour
    if name == "day_of_week":
        return local.isoweekday()
    return local.month - 1


# ----------------------------------------------------------------------------- reading the input


def _read_condition(condition: dict[str, Any]) -> dict[str, Any]:
    """A stored condition with its ``cmp`` filled in and its value read as its type (the
    catalogue accepted it: a number may be a decimal string, a boolean "true", "0", ...)."""
    kind = CONDITIONS[condition["name"]].type
    value = condition["value"]
    if kind == "number":
        value = int(value)
    elif kind == "boolean" and isinstance(value, str):
        value = value in ("true", "1")
    return {"name": condition["name"], "cmp": condition.get("cmp", "eq"), "value": value}


def _situation(visitor: dict[str, Any], event: str) -> dict[str, Any]:
    """The visitor's fields, every one filled in (see the module's doc)."""
    sent = {name: value for name, value in visitor.items() if value is not None}
    situation = {**FIRST_VISIT, **sent}
    for name, value in sent.items():
        if isinstance(FIRST_VISIT.get(name), bool) and isinstance(value, str):
            situation[name] = value in ("true", "1")
        elif type(FIRST_VISIT.get(name)) is int and isinstance(value, str):
            situation[name] = int(value)
    situation["fired_triggers"] = [str(t) for t in situation["fired_triggers"]]
    if "seconds_on_page" not in sent:
        situation["seconds_on_page"] = situation["seconds_on_site"]
    if "is_triggered" not in sent:
        situation["is_triggered"] = len(situation["fired_triggers"]) > 0
    if "is_visitor_send_message" not in sent:
        situation["is_visitor_send_message"] = event == "onmessage"
    return situation


def _zone(timezone: float | str) -> datetime.tzinfo:
    """The office-hours timezone: an IANA name, or an offset in hours."""
    if isinstance(timezone, str):
        return zoneinfo.ZoneInfo(timezone)
    return datetime.timezone(datetime.timedelta(hours=timezone))


def _json(value: Any) -> str:
    """``value`` as JSON, the way the answer spells it inside ``why``."""
    return json.dumps(value, ensure_ascii=False)
