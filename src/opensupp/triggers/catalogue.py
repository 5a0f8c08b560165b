"""The one typed catalogue of trigger conditions and actions, and their validation.

This is data first: ``CONDITIONS`` (every condition name of API.md with its type, bounds,
enum values and whether it is a delay), ``COMPARATORS`` (what each type may be compared
with) and ``ACTIONS``. The API validates trigger bodies with ``validate_conditions`` and
``validate_actions``; the trigger engine reads the same specs, so the two cannot drift.

Validation follows API.md's fine print: a number may come as a decimal string (``"60"``)
and a boolean as ``"true"``/``"false"``/``"1"``/``"0"``; nothing else is coerced. Strings
count code points and refuse control characters. Every problem is reported, each as a
``FieldError`` with its exact path (``conditions[1].cmp``), and each message lists what is
allowed. No I/O; nothing here knows about HTTP.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from re import _parser as sre_parser  # type: ignore[attr-defined]  # the stdlib's own regex parser
from typing import Any, Literal

import re2

from opensupp.errors import FieldError, unknown_fields
from opensupp.values import MAX_DIGITS, as_bool, as_int, text_problem

ConditionType = Literal["number", "string", "boolean", "enum"]
Origin = Literal["smartsupp", "opensupp"]

COMPARATORS: dict[str, tuple[str, ...]] = {
    "number": ("eq", "not_eq", "gt", "gte", "lt", "lte"),
    "string": ("eq", "not_eq", "contains", "not_contains", "start_with", "not_start_with", "regex"),
    "boolean": ("eq", "not_eq"),
    "enum": ("eq", "not_eq"),
}
DEFAULT_COMPARATOR = "eq"  # what an absent ``cmp`` means

MAX_CONDITIONS = 100
MIN_ACTIONS, MAX_ACTIONS = 1, 20
MAX_STRING = 1000  # code points of a condition's string value
MAX_REGEX = 500  # code points of a ``regex`` condition's pattern
# What a pattern may cost (see ``regex_problem``): the count of a bounded repeat ({n,m}), the
# RE2 instructions it compiles to, those of all the regex conditions of one trigger, and the
# memory RE2 may use for one (its program and the DFA it builds while searching).
MAX_REPEAT = 100
MAX_PROGRAM = 1000
MAX_TRIGGER_PROGRAM = 2000
REGEX_MAX_MEM = 512 * 1024
MAX_MAGNITUDE = 10**MAX_DIGITS - 1

CONDITION_FIELDS = ("name", "value", "cmp")


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """One condition name. ``min``/``max`` bound numbers (None: unbounded on that side)."""

    name: str
    type: ConditionType
    origin: Origin
    description: str
    min: int | None = None
    max: int | None = None
    values: tuple[str, ...] = ()  # the allowed values of an enum
    integer: bool = False  # numbers only: the value must be a whole number
    delay: bool = False  # a wait before the next condition, not a filter

    @property
    def comparators(self) -> tuple[str, ...]:
        return COMPARATORS[self.type]


def _number(
    name: str, origin: Origin, description: str, min: int, max: int | None = None, delay: bool = False
) -> ConditionSpec:
    return ConditionSpec(name, "number", origin, description, min=min, max=max, integer=True, delay=delay)


def _string(name: str, origin: Origin, description: str) -> ConditionSpec:
    return ConditionSpec(name, "string", origin, description)


def _boolean(name: str, description: str) -> ConditionSpec:
    return ConditionSpec(name, "boolean", "smartsupp", description)


_SPECS = (
    _number("delay_site", "smartsupp", "wait this many seconds on the site before the next condition", 1, delay=True),
    _number("delay_page", "smartsupp", "the same wait, on this page; cancelled by a page change", 1, delay=True),
    _boolean("is_visitor_served", "the visitor is in a conversation, or a chat is active"),
    _boolean("is_visitor_send_message", "the visitor has sent any message"),
    _boolean("is_triggered", "the visitor has already received a trigger's message"),
    _string("visitor_group", "smartsupp", 'the visitor\'s group ("" matches visitors with none)'),
    _number("hour_of_day", "smartsupp", "the hour, in the account's office-hours timezone", 0, 23),
    _number("day_of_week", "smartsupp", "1 is Monday, 7 Sunday (unlike office hours' dow)", 1, 7),
    _number("month_of_year", "smartsupp", "the month, 0 is January", 0, 11),
    _string("visitor_ip", "smartsupp", "the visitor's IP address"),
    _string("visitor_city", "smartsupp", "the visitor's city, when it is known"),
    _string("visitor_country_code", "smartsupp", "ISO 3166-1 alpha-2, compared case-insensitively"),
    _number("number_of_visits", "smartsupp", "the visitor's visits; a visit ends after 30 s away from the site", 1),
    _number("number_of_chats", "smartsupp", "the visitor's finished chats", 0),
    _string("visitor_page_url", "smartsupp", "the current page's URL"),
    _string("visitor_page_title", "opensupp", "the current page's title"),
    _string("visitor_referer", "opensupp", "the URL the visitor came to the site from (the Referer)"),
    _string("visitor_language", "opensupp", "the language the visitor's browser asks for"),
    _number("number_of_pages", "opensupp", "the pages the visitor has seen this visit", 1),
    ConditionSpec(
        "account_status", "enum", "opensupp", "whether an agent of the account is online", values=("online", "offline")
    ),
)
CONDITIONS: dict[str, ConditionSpec] = {spec.name: spec for spec in _SPECS}


@dataclass(frozen=True, slots=True)
class TextField:
    """A required string field of an action."""

    name: str
    max_length: int
    multiline: bool  # tab and newline allowed
    description: str


@dataclass(frozen=True, slots=True)
class ActionSpec:
    name: str
    origin: Origin
    description: str
    fields: tuple[TextField, ...]

    @property
    def field_names(self) -> tuple[str, ...]:
        return ("name", *(field.name for field in self.fields))


ACTIONS: dict[str, ActionSpec] = {
    "message": ActionSpec(
        "message",
        "smartsupp",
        "send the visitor a chat message in an agent's name",
        (
            TextField("agent_nick", 100, False, "the name the message is signed with"),
            TextField("message", 2000, True, "the text sent to the visitor"),
        ),
    ),
}

# ----------------------------------------------------------------------------- validation



class _Invalid(Exception):
    """A value's problem, as the message of its FieldError."""


def validate_conditions(raw: object, path: str = "conditions") -> tuple[list[dict], list[FieldError]]:
    """A trigger's ``conditions`` as the client sent them (parsed JSON) -> (normalized, errors).

    Each normalized condition is ``{"name", "value"}`` plus ``"cmp"`` only when it was
    sent, the value coerced to its type. When there are errors the list is empty. The
    regular expressions of one trigger may compile to ``MAX_TRIGGER_PROGRAM`` RE2
    instructions in all.
    """
    normalized, errors = _validate_list(raw, path, 0, MAX_CONDITIONS, _condition)
    costs = {i: _regex_verdict(c["value"])[1] for i, c in enumerate(normalized) if c.get("cmp") == "regex"}
    if sum(costs.values()) > MAX_TRIGGER_PROGRAM:
        each = ", ".join(f"{path}[{i}]: {cost}" for i, cost in costs.items())
        problem = (f"the regular expressions of one trigger may compile to at most {MAX_TRIGGER_PROGRAM} RE2 "
                   f"instructions in all; these take {sum(costs.values())} ({each})")
        return [], [FieldError(path, problem)]
    return normalized, errors


def validate_actions(raw: object, path: str = "actions") -> tuple[list[dict], list[FieldError]]:
    """A trigger's ``actions`` (parsed JSON) -> (normalized, errors); the list is empty on errors."""
    return _validate_list(raw, path, MIN_ACTIONS, MAX_ACTIONS, _action)


def _validate_list(
    raw: object, path: str, least: int, most: int, check: Callable[[dict, str, list[FieldError]], dict]
) -> tuple[list[dict], list[FieldError]]:
    """A JSON list of objects, each checked by ``check``; a list of the wrong size checks no item."""
    if not isinstance(raw, list):
        return [], [FieldError(path, "must be a list")]
    if len(raw) < least:
        return [], [FieldError(path, f"must have at least {least} item" + ("s" if least > 1 else ""))]
    if len(raw) > most:
        return [], [FieldError(path, f"must have at most {most} items")]
    out: list[dict] = []
    errors: list[FieldError] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            out.append(check(item, f"{path}[{i}]", errors))
        else:
            errors.append(FieldError(f"{path}[{i}]", "must be an object"))
    return ([] if errors else out), errors


def _unknown_fields(item: dict, allowed: tuple[str, ...], at: str) -> list[FieldError]:
    if all(key in allowed for key in item):  # (the usual case: no message to build)
        return []
    return unknown_fields(item, allowed, at, f"is not a known field (allowed: {', '.join(allowed)})")


def _spec(item: dict, catalogue: dict[str, Any], kind: str, at: str, errors: list[FieldError]) -> Any:
    """The spec that ``item["name"]`` names in ``catalogue``, or None with an error added."""
    if "name" not in item:
        errors.append(FieldError(f"{at}.name", "is required"))
        return None
    spec = catalogue.get(item["name"]) if isinstance(item["name"], str) else None
    if spec is None:
        errors.append(FieldError(f"{at}.name", f"is not a known {kind} (allowed: {', '.join(catalogue)})"))
    return spec


def _condition(item: dict, at: str, errors: list[FieldError]) -> dict:
    errors += _unknown_fields(item, CONDITION_FIELDS, at)
    spec: ConditionSpec | None = _spec(item, CONDITIONS, "condition", at, errors)
    if spec is None:
        return {}
    out: dict[str, Any] = {"name": spec.name}
    cmp = item.get("cmp", DEFAULT_COMPARATOR)
    if not isinstance(cmp, str) or cmp not in spec.comparators:
        allowed = ", ".join(spec.comparators)
        errors.append(FieldError(f"{at}.cmp", f"is not a comparator for {spec.type} conditions (allowed: {allowed})"))
    if "value" not in item:
        errors.append(FieldError(f"{at}.value", "is required"))
        return out
    try:
        out["value"] = _VALUE_CHECKS[spec.type](spec, item["value"])
        if cmp == "regex" and spec.type == "string":
            problem = regex_problem(out["value"])
            if problem is not None:
                raise _Invalid(problem)
    except _Invalid as exc:
        errors.append(FieldError(f"{at}.value", str(exc)))
    if "cmp" in item:
        out["cmp"] = cmp
    return out


def _action(item: dict, at: str, errors: list[FieldError]) -> dict:
    spec: ActionSpec | None = _spec(item, ACTIONS, "action", at, errors)
    if spec is None:
        return {}
    errors += _unknown_fields(item, spec.field_names, at)
    out: dict[str, Any] = {"name": spec.name}
    for field in spec.fields:
        try:
            if field.name not in item:
                raise _Invalid("is required")
            out[field.name] = _text(item[field.name], field.max_length, multiline=field.multiline, required=True)
        except _Invalid as exc:
            errors.append(FieldError(f"{at}.{field.name}", str(exc)))
    return out


# ----------------------------------------------------------------------------- values by type


def _number_value(spec: ConditionSpec, value: object) -> int:
    number = as_int(value)
    low = spec.min if spec.min is not None else -MAX_MAGNITUDE
    high = spec.max if spec.max is not None else MAX_MAGNITUDE
    if number is None or not low <= number <= high:
        raise _Invalid(_number_expected(spec))
    return number


def _number_expected(spec: ConditionSpec) -> str:
    if spec.min is not None and spec.max is not None:
        return f"must be a whole number from {spec.min} to {spec.max}"
    if spec.min is not None:
        return f"must be a whole number of at least {spec.min} (at most {MAX_DIGITS} digits)"
    return f"must be a whole number of at most {MAX_DIGITS} digits"


def _boolean_value(spec: ConditionSpec, value: object) -> bool:
    flag = as_bool(value)
    if flag is None:
        raise _Invalid("must be true or false")
    return flag


def _enum_value(spec: ConditionSpec, value: object) -> str:
    if type(value) is not str or value not in spec.values:
        raise _Invalid(f"must be one of: {', '.join(spec.values)}")
    return value


def _string_value(spec: ConditionSpec, value: object) -> str:
    return _text(value, MAX_STRING, multiline=False, required=False)


_VALUE_CHECKS = {"number": _number_value, "string": _string_value, "boolean": _boolean_value, "enum": _enum_value}


def _text(value: object, max_length: int, *, multiline: bool, required: bool) -> str:
    """The string rules of API.md, in the order and words of opensupp.web.fields."""
    if type(value) is not str:
        raise _Invalid("must be a string")
    if required and not value:
        raise _Invalid("must not be empty")
    if len(value) > max_length:
        raise _Invalid(f"must be at most {max_length} characters")
    problem = text_problem(value, multiline=multiline, required=required)
    if problem is not None:
        raise _Invalid(problem)
    return value


# ----------------------------------------------------------------------------- regular expressions

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a client's bad pattern is a 400, not a line on the server's stderr
_RE2_OPTIONS.max_mem = REGEX_MAX_MEM
# The check compiles with less memory: RE2 then gives up on a program past ~1,300
# instructions (2/3 of max_mem, 32 bytes an instruction) instead of building it whole
# (\w-heavy patterns took far longer to be refused with the full ``REGEX_MAX_MEM``).
_CHECK_OPTIONS = re2.Options()
_CHECK_OPTIONS.log_errors = False
_CHECK_OPTIONS.max_mem = 64 * 1024
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
_LOOKAROUNDS = ("ASSERT", "ASSERT_NOT")
_BACKREFERENCES = ("GROUPREF", "GROUPREF_EXISTS")


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be a ``regex`` condition's value, or None when it may.

    The guarantee against catastrophic backtracking is the engine: the pattern must compile
    in RE2 (google-re2), whose matching time is linear in the input whatever the pattern,
    and the trigger engine evaluates it with RE2 (``compile_regex``). RE2 also refuses
    backreferences, lookaround and possessive or atomic forms, so what passes is the portable
    subset that Python's ``re`` and a browser's RegExp read the same way.

    Linear is not cheap: a search costs up to the input's length times the program's size,
    and RE2's DFA memory grows with both (``.{1000}.{900}`` compiles to 15,204 instructions;
    one search of a visitor URL of 2,000 characters took longer than many whole requests, and
    megabytes). So a pattern may repeat a part at most ``MAX_REPEAT`` times ({n,m}), compile
    to at most ``MAX_PROGRAM`` instructions (the worst search of the longest visitor string
    then stays short enough for the event loop), and RE2 may use ``REGEX_MAX_MEM`` bytes for it.

    On top of that, a bounded syntax check on the stdlib's own parse of the pattern refuses
    the classic exponential shapes, a repeated part that itself repeats or alternates
    (``(a+)+$``, ``(a|ab)*``), so that a pattern stays safe if a backtracking engine (a
    widget's JavaScript) ever evaluates it. That check is a guard, not a proof (``.*a.*a.*a``
    is polynomial and passes), which is why RE2 is the one to evaluate with. Patterns are at
    most ``MAX_REGEX`` code points, so every check here takes bounded time.
    """
    return _regex_verdict(pattern)[0]


def regex_instructions(pattern: str) -> int:
    """The RE2 instructions an allowed ``pattern`` compiles to (0 for one not allowed)."""
    return _regex_verdict(pattern)[1]


def compile_regex(pattern: str) -> Any:
    """The RE2 object to evaluate a ``regex`` condition with; ValueError if the pattern is not allowed."""
    problem = regex_problem(pattern)
    if problem is not None:
        raise ValueError(f"regular expression {problem}")
    return re2.compile(pattern, _RE2_OPTIONS)


@functools.lru_cache(maxsize=1024)  # small entries: a pattern, a sentence, a number
def _regex_verdict(pattern: str) -> tuple[str | None, int]:
    """(why ``pattern`` is refused or None, the RE2 instructions it compiles to)."""
    try:
        return None, _check_regex(pattern)
    except _Invalid as exc:
        return str(exc), 0


def _check_regex(pattern: str) -> int:
    """The RE2 instructions ``pattern`` compiles to; _Invalid when it may not be a condition."""
    if len(pattern) > MAX_REGEX:
        raise _Invalid(f"must be at most {MAX_REGEX} characters for a regular expression")
    try:
        tree = sre_parser.parse(pattern)
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise _Invalid(f"must be a valid regular expression ({exc.msg}{where})") from None
    repeat = _check_shape(tree, repeated=False)
    try:
        size = re2.compile(pattern, _CHECK_OPTIONS).programsize
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if not reason.startswith("pattern too large"):
            raise _Invalid(f"must be a regular expression that RE2 accepts ({reason})") from None
        size = 0  # more than _CHECK_OPTIONS lets RE2 build
    if repeat > MAX_REPEAT:
        raise _Invalid(f"must not repeat a part more than {MAX_REPEAT} times ({{{repeat}}} here): long repeats "
                       "make a pattern costly to run (allowed: + and * for any length)")
    if not 0 < size <= MAX_PROGRAM:
        compiled = f"to {size} instructions" if size else "to more instructions than it will build"
        raise _Invalid(f"is too costly to run: RE2 compiles it {compiled}, at most {MAX_PROGRAM} are allowed "
                       "(repeats and large character classes such as \\w cost most)")
    return size


def _check_shape(items: Any, repeated: bool) -> int:
    """Refuse backreferences, lookaround, and repeats or alternation inside a repeat; return
    the largest count of a bounded repeat ({n,m}) found (0 when none)."""
    largest = 0
    for op, arg in items:
        kind = op.name
        if kind in _BACKREFERENCES:
            raise _Invalid("must not use backreferences (\\1, (?P=name)) or conditional groups")
        if kind in _LOOKAROUNDS:
            raise _Invalid("must not use lookahead or lookbehind ((?=, (?!, (?<=, (?<!)")
        if kind in _REPEATS:
            low, high, sub = arg
            if repeated and low != high:
                raise _Invalid(_NESTED)
            bounded = high if high != sre_parser.MAXREPEAT else low
            largest = max(largest, bounded, _check_shape(sub, repeated or high > 1))
        elif kind == "BRANCH":
            if repeated:
                raise _Invalid(_NESTED)
            for branch in arg[1]:
                largest = max(largest, _check_shape(branch, repeated))
        elif kind == "SUBPATTERN":
            largest = max(largest, _check_shape(arg[3], repeated))
        elif kind == "ATOMIC_GROUP":
            largest = max(largest, _check_shape(arg, repeated))
    return largest


_NESTED = (
    "must not repeat a part that itself repeats or alternates, like (a+)+ or (a|ab)*, which can take "
    "exponential time (allowed: a repeat of a fixed-length part, like (ab)+ or [a-z]+)"
)
