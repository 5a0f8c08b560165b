"""The trigger catalogue: its data against API.md, and validate_conditions/validate_actions.

Plain tables, no database and no app.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from opensupp.errors import FieldError
from opensupp.triggers.catalogue import (
    ACTIONS,
    COMPARATORS,
    CONDITIONS,
    compile_regex,
    regex_problem,
    validate_actions,
    validate_conditions,
)

ALL_NAMES = ", ".join(CONDITIONS)
UNKNOWN_NAME = [FieldError("conditions[0].name", f"is not a known condition (allowed: {ALL_NAMES})")]
NUMBER_CMPS = "eq, not_eq, gt, gte, lt, lte"
STRING_CMPS = "eq, not_eq, contains, not_contains, start_with, not_start_with, regex"
NESTED = (
    "must not repeat a part that itself repeats or alternates, like (a+)+ or (a|ab)*, which can take "
    "exponential time (allowed: a repeat of a fixed-length part, like (ab)+ or [a-z]+)"
)

# ----------------------------------------------------------------------------- the data, as API.md has it

# name: (type, min, max, enum values, delay, origin)
API_MD = {
    "delay_site": ("number", 1, None, (), True, "smartsupp"),
    "delay_page": ("number", 1, None, (), True, "smartsupp"),
    "is_visitor_served": ("boolean", None, None, (), False, "smartsupp"),
    "is_visitor_send_message": ("boolean", None, None, (), False, "smartsupp"),
    "is_triggered": ("boolean", None, None, (), False, "smartsupp"),
    "visitor_group": ("string", None, None, (), False, "smartsupp"),
    "hour_of_day": ("number", 0, 23, (), False, "smartsupp"),
    "day_of_week": ("number", 1, 7, (), False, "smartsupp"),
    "month_of_year": ("number", 0, 11, (), False, "smartsupp"),
    "visitor_ip": ("string", None, None, (), False, "smartsupp"),
    "visitor_city": ("string", None, None, (), False, "smartsupp"),
    "visitor_country_code": ("string", None, None, (), False, "smartsupp"),
    "number_of_visits": ("number", 1, None, (), False, "smartsupp"),
    "number_of_chats": ("number", 0, None, (), False, "smartsupp"),
    "visitor_page_url": ("string", None, None, (), False, "smartsupp"),
    "visitor_page_title": ("string", None, None, (), False, "opensupp"),
    "visitor_referer": ("string", None, None, (), False, "opensupp"),
    "visitor_language": ("string", None, None, (), False, "opensupp"),
    "number_of_pages": ("number", 1, None, (), False, "opensupp"),
    "account_status": ("enum", None, None, ("online", "offline"), False, "opensupp"),
}


def test_catalogue_is_api_md_exactly():
    assert list(CONDITIONS) == list(API_MD)
    for name, spec in CONDITIONS.items():
        assert spec.name == name
        assert (spec.type, spec.min, spec.max, spec.values, spec.delay, spec.origin) == API_MD[name]
        assert spec.integer is (spec.type == "number")
        assert spec.description and "\n" not in spec.description
        assert spec.comparators == COMPARATORS[spec.type]


def test_comparators_are_api_md_exactly():
    assert COMPARATORS == {
        "number": ("eq", "not_eq", "gt", "gte", "lt", "lte"),
        "string": ("eq", "not_eq", "contains", "not_contains", "start_with", "not_start_with", "regex"),
        "boolean": ("eq", "not_eq"),
        "enum": ("eq", "not_eq"),
    }


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CONDITIONS["hour_of_day"].max = 24  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ACTIONS["message"].name = "x"  # type: ignore[misc]


def test_actions_catalogue():
    assert list(ACTIONS) == ["message"]
    fields = {f.name: (f.max_length, f.multiline) for f in ACTIONS["message"].fields}
    assert fields == {"agent_nick": (100, False), "message": (2000, True)}


# ----------------------------------------------------------------------------- conditions: accepted

VALID = {
    "delay_site": 60,
    "delay_page": 1,
    "is_visitor_served": False,
    "is_visitor_send_message": True,
    "is_triggered": False,
    "visitor_group": "",
    "hour_of_day": 23,
    "day_of_week": 7,
    "month_of_year": 0,
    "visitor_ip": "192.0.2.1",
    "visitor_city": "Brno",
    "visitor_country_code": "CZ",
    "number_of_visits": 1,
    "number_of_chats": 0,
    "visitor_page_url": "https://example.com/pricing",
    "visitor_page_title": "Pricing – Example",
    "visitor_referer": "https://www.google.com/",
    "visitor_language": "cs",
    "number_of_pages": 3,
    "account_status": "offline",
}


def test_every_name_has_a_case():
    assert set(VALID) == set(CONDITIONS)


@pytest.mark.parametrize("name", list(VALID))
def test_every_name_accepted(name):
    conditions = [{"name": name, "value": VALID[name]}]
    assert validate_conditions(conditions) == (conditions, [])


EXAMPLE_OF_TYPE = {
    "number": "hour_of_day",
    "string": "visitor_page_url",
    "boolean": "is_triggered",
    "enum": "account_status",
}


@pytest.mark.parametrize(
    "type_, cmp", [(type_, cmp) for type_, cmps in COMPARATORS.items() for cmp in cmps]
)
def test_every_comparator_of_a_type_accepted(type_, cmp):
    name = EXAMPLE_OF_TYPE[type_]
    conditions = [{"name": name, "value": VALID[name], "cmp": cmp}]
    assert validate_conditions(conditions) == (conditions, [])


@pytest.mark.parametrize(
    "name, cmp, allowed",
    [
        ("hour_of_day", "contains", f"number conditions (allowed: {NUMBER_CMPS})"),
        ("delay_site", "regex", f"number conditions (allowed: {NUMBER_CMPS})"),
        ("visitor_city", "gt", f"string conditions (allowed: {STRING_CMPS})"),
        ("visitor_page_url", "startswith", f"string conditions (allowed: {STRING_CMPS})"),
        ("is_triggered", "gte", "boolean conditions (allowed: eq, not_eq)"),
        ("account_status", "contains", "enum conditions (allowed: eq, not_eq)"),
        ("account_status", "EQ", "enum conditions (allowed: eq, not_eq)"),
        ("is_visitor_served", None, "boolean conditions (allowed: eq, not_eq)"),
        ("is_visitor_served", ["eq"], "boolean conditions (allowed: eq, not_eq)"),
        ("number_of_visits", "", f"number conditions (allowed: {NUMBER_CMPS})"),
    ],
)
def test_wrong_comparator_names_type_and_lists_allowed(name, cmp, allowed):
    conditions = [{"name": "delay_site", "value": 5}, {"name": name, "value": VALID[name], "cmp": cmp}]
    expected = [FieldError("conditions[1].cmp", f"is not a comparator for {allowed}")]
    assert validate_conditions(conditions) == ([], expected)


def test_cmp_kept_only_when_sent():
    sent = [
        {"name": "visitor_page_url", "value": "/pricing", "cmp": "contains"},
        {"name": "number_of_visits", "value": 1},
        {"name": "is_triggered", "value": False, "cmp": "eq"},
    ]
    normalized, errors = validate_conditions(sent)
    assert errors == []
    assert normalized == sent
    assert [list(c) for c in normalized] == [["name", "value", "cmp"], ["name", "value"], ["name", "value", "cmp"]]


def test_cmp_and_fields_in_canonical_order():
    normalized, _ = validate_conditions([{"cmp": "gt", "value": "3", "name": "number_of_pages"}])
    assert json.dumps(normalized) == '[{"name": "number_of_pages", "value": 3, "cmp": "gt"}]'


# ----------------------------------------------------------------------------- values: coercion and bounds


@pytest.mark.parametrize(
    "name, sent, stored",
    [
        ("delay_site", "60", 60),
        ("number_of_chats", "0", 0),
        ("number_of_chats", "-0", 0),
        ("number_of_visits", "999999999999999999", 999_999_999_999_999_999),
        ("number_of_visits", 999_999_999_999_999_999, 999_999_999_999_999_999),
        ("hour_of_day", "07", 7),
        ("is_triggered", "true", True),
        ("is_triggered", "false", False),
        ("is_visitor_served", "1", True),
        ("is_visitor_served", "0", False),
        ("is_visitor_send_message", True, True),
    ],
)
def test_coercion(name, sent, stored):
    normalized, errors = validate_conditions([{"name": name, "value": sent}])
    assert errors == []
    assert normalized == [{"name": name, "value": stored}]
    assert type(normalized[0]["value"]) is type(stored)


HOUR = "must be a whole number from 0 to 23"
DELAY = "must be a whole number of at least 1 (at most 18 digits)"
CHATS = "must be a whole number of at least 0 (at most 18 digits)"
BOOL = "must be true or false"
STATUS = "must be one of: online, offline"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("hour_of_day", 24, HOUR),
        ("hour_of_day", -1, HOUR),
        ("hour_of_day", "24", HOUR),
        ("hour_of_day", 0.5, HOUR),
        ("hour_of_day", 7.0, HOUR),  # API.md coerces strings only, as every other field
        ("hour_of_day", "1.0", HOUR),
        ("hour_of_day", " 1", HOUR),
        ("hour_of_day", "1e1", HOUR),
        ("hour_of_day", "+1", HOUR),
        ("hour_of_day", "", HOUR),
        ("hour_of_day", True, HOUR),
        ("hour_of_day", None, HOUR),
        ("hour_of_day", [1], HOUR),
        ("hour_of_day", float("nan"), HOUR),
        ("hour_of_day", float("inf"), HOUR),
        ("hour_of_day", "١", HOUR),  # a non-ASCII digit
        ("day_of_week", 0, "must be a whole number from 1 to 7"),
        ("day_of_week", 8, "must be a whole number from 1 to 7"),
        ("month_of_year", 12, "must be a whole number from 0 to 11"),
        ("delay_site", 0, DELAY),
        ("delay_page", -5, "must be a whole number of at least 1 (at most 18 digits)"),
        ("delay_site", 10**18, DELAY),
        ("delay_site", "1234567890123456789", DELAY),
        ("delay_site", 1e300, DELAY),
        ("number_of_visits", 0, "must be a whole number of at least 1 (at most 18 digits)"),
        ("number_of_pages", False, "must be a whole number of at least 1 (at most 18 digits)"),
        ("number_of_chats", -1, CHATS),
        ("is_triggered", 1, BOOL),
        ("is_triggered", 0, BOOL),
        ("is_triggered", "True", BOOL),
        ("is_triggered", "yes", BOOL),
        ("is_triggered", "", BOOL),
        ("is_triggered", None, BOOL),
        ("account_status", "Online", STATUS),
        ("account_status", "away", STATUS),
        ("account_status", 1, STATUS),
        ("account_status", None, STATUS),
        ("visitor_city", 5, "must be a string"),
        ("visitor_city", None, "must be a string"),
        ("visitor_city", True, "must be a string"),
        ("visitor_city", "x" * 1001, "must be at most 1000 characters"),
        ("visitor_city", "Br\x00no", "must not contain control characters"),
        ("visitor_page_title", "a\tb", "must not contain control characters"),
        ("visitor_page_title", "a\nb", "must not contain control characters"),
        ("visitor_referer", "\x7f", "must not contain control characters"),
        ("visitor_referer", "\x1f", "must not contain control characters"),
    ],
)
def test_wrong_value_says_what_is_expected(name, value, message):
    conditions = [{"name": name, "value": value}]
    assert validate_conditions(conditions) == ([], [FieldError("conditions[0].value", message)])


@pytest.mark.parametrize(
    "name, value",
    [
        ("hour_of_day", 0),
        ("month_of_year", 11),
        ("day_of_week", 1),
        ("delay_site", 1),
        ("number_of_chats", 0),
        ("visitor_group", ""),
        ("visitor_group", " "),
        ("visitor_city", "x" * 1000),
        ("visitor_page_title", "😀" * 1000),  # code points, not bytes or UTF-16 units
        ("account_status", "online"),
    ],
)
def test_bounds_are_inclusive(name, value):
    assert validate_conditions([{"name": name, "value": value}]) == ([{"name": name, "value": value}], [])


# ----------------------------------------------------------------------------- the guide's example

GUIDE_CONDITIONS = [
    {"name": "delay_site", "value": 60},
    {"name": "is_visitor_send_message", "value": False},
    {"name": "is_visitor_served", "value": False},
    {"name": "number_of_visits", "value": 1},
]
GUIDE_ACTIONS = [
    {
        "name": "message",
        "agent_nick": "Support",
        "message": "Hello, we have noticed you are here for the 1st time. If you have any questions, "
        "do not hesitate to get in touch.",
    }
]


def test_guide_example_normalizes_to_itself():
    conditions, errors = validate_conditions(json.loads(json.dumps(GUIDE_CONDITIONS)))
    assert errors == []
    assert json.dumps(conditions) == json.dumps(GUIDE_CONDITIONS)
    actions, errors = validate_actions(json.loads(json.dumps(GUIDE_ACTIONS)))
    assert errors == []
    assert json.dumps(actions) == json.dumps(GUIDE_ACTIONS)


# ----------------------------------------------------------------------------- conditions: structure


@pytest.mark.parametrize(
    "raw, errors",
    [
        (None, [FieldError("conditions", "must be a list")]),
        ({"name": "delay_site", "value": 1}, [FieldError("conditions", "must be a list")]),
        ("[]", [FieldError("conditions", "must be a list")]),
        ([{"name": "delay_site", "value": 1}] * 101, [FieldError("conditions", "must have at most 100 items")]),
        ([1], [FieldError("conditions[0]", "must be an object")]),
        ([[{"name": "delay_site", "value": 1}]], [FieldError("conditions[0]", "must be an object")]),
        ([{"value": 1}], [FieldError("conditions[0].name", "is required")]),
        ([{"name": "delay_site"}], [FieldError("conditions[0].value", "is required")]),
        ([{"name": "delay_site", "cmp": "gt"}], [FieldError("conditions[0].value", "is required")]),
        ([{"name": "Delay_Site", "value": 1}], UNKNOWN_NAME),
        ([{"name": 1, "value": 1}], UNKNOWN_NAME),
        ([{"name": None, "value": 1}], UNKNOWN_NAME),
        (
            [{"name": "delay_site", "value": 1, "extra": True}],
            [FieldError("conditions[0].extra", "is not a known field (allowed: name, value, cmp)")],
        ),
        (
            [{"name": "delay_site", "value": 1, "Cmp": "eq", "values": 2}],
            [
                FieldError("conditions[0].Cmp", "is not a known field (allowed: name, value, cmp)"),
                FieldError("conditions[0].values", "is not a known field (allowed: name, value, cmp)"),
            ],
        ),
    ],
)
def test_structure_errors(raw, errors):
    assert validate_conditions(raw) == ([], errors)


def test_empty_and_hundred_conditions_accepted():
    assert validate_conditions([]) == ([], [])
    hundred = [{"name": "number_of_pages", "value": i + 1} for i in range(100)]
    assert validate_conditions(hundred) == (hundred, [])


def test_path_prefix_is_the_callers():
    assert validate_conditions([{"name": "x", "value": 1}], path="body.conditions")[1] == [
        FieldError("body.conditions[0].name", f"is not a known condition (allowed: {ALL_NAMES})")
    ]
    errors = validate_actions([], path="trigger.actions")[1]
    assert errors == [FieldError("trigger.actions", "must have at least 1 item")]


def test_every_error_at_once():
    raw = [
        {"name": "delay_site", "value": 60},
        {"name": "hour_of_day", "value": "25", "cmp": "contains", "extra": 1},
        "not an object",
        {"name": "nope", "value": 1},
        {"name": "visitor_page_url", "value": "(a+)+$", "cmp": "regex"},
        {"name": "account_status"},
        {"name": "is_triggered", "value": "yes"},
    ]
    assert validate_conditions(raw) == (
        [],
        [
            FieldError("conditions[1].extra", "is not a known field (allowed: name, value, cmp)"),
            FieldError("conditions[1].cmp", f"is not a comparator for number conditions (allowed: {NUMBER_CMPS})"),
            FieldError("conditions[1].value", HOUR),
            FieldError("conditions[2]", "must be an object"),
            FieldError("conditions[3].name", f"is not a known condition (allowed: {ALL_NAMES})"),
            FieldError("conditions[4].value", NESTED),
            FieldError("conditions[5].value", "is required"),
            FieldError("conditions[6].value", BOOL),
        ],
    )


def test_input_is_not_mutated():
    raw = [{"name": "delay_site", "value": "60", "cmp": "gte"}]
    snapshot = json.dumps(raw)
    validate_conditions(raw)
    assert json.dumps(raw) == snapshot


# ----------------------------------------------------------------------------- regular expressions

SAFE_PATTERNS = [
    "",
    "^/pricing",
    "/products/[0-9]+$",
    r"(?i)^https?://(www\.)?example\.com/",
    "(foo|bar)",
    "(ab)+",
    "(?:x{3})+",
    "(a+)?",
    "[a-z]+\\.html$",
    "a" * 500,
    "(" * 250 + ")" * 250,
    "é+",
]


@pytest.mark.parametrize("pattern", SAFE_PATTERNS)
def test_safe_regex_accepted(pattern):
    conditions = [{"name": "visitor_page_url", "value": pattern, "cmp": "regex"}]
    assert validate_conditions(conditions) == (conditions, [])
    assert regex_problem(pattern) is None


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("(a+)+$", NESTED),
        ("(a*)*", NESTED),
        ("(a+)*b", NESTED),
        (r"(\w+\s?)+$", NESTED),
        ("(a|ab)*", NESTED),
        ("(a|a)*$", NESTED),
        ("(foo|bar)+", NESTED),
        ("(a+){2}", NESTED),
        ("(.*,){10}x", NESTED),
        ("(a+?)+", NESTED),
        (r"(a)\1", "must not use backreferences (\\1, (?P=name)) or conditional groups"),
        ("(?P<x>a)(?P=x)", "must not use backreferences (\\1, (?P=name)) or conditional groups"),
        ("(a)?(?(1)b|c)", "must not use backreferences (\\1, (?P=name)) or conditional groups"),
        ("(?=a)", "must not use lookahead or lookbehind ((?=, (?!, (?<=, (?<!)"),
        ("(?<!a)b", "must not use lookahead or lookbehind ((?=, (?!, (?<=, (?<!)"),
        ("(", "must be a valid regular expression (missing ), unterminated subpattern at position 0)"),
        ("[", "must be a valid regular expression (unterminated character set at position 0)"),
        ("*a", "must be a valid regular expression (nothing to repeat at position 0)"),
        ("a" * 501, "must be at most 500 characters for a regular expression"),
    ],
)
def test_unsafe_or_invalid_regex_rejected(pattern, message):
    conditions = [{"name": "visitor_referer", "value": pattern, "cmp": "regex"}]
    assert validate_conditions(conditions) == ([], [FieldError("conditions[0].value", message)])
    assert regex_problem(pattern) == message


@pytest.mark.parametrize("pattern", ["a++", "(?>a)", r"a\Z", "a{1001}", "(?:a{1000}){1000}"])
def test_what_re2_refuses_is_rejected(pattern):
    """Python's re reads these; RE2 does not. RE2's own words follow, so only their frame is pinned."""
    errors = validate_conditions([{"name": "visitor_referer", "value": pattern, "cmp": "regex"}])[1]
    assert [e.field for e in errors] == ["conditions[0].value"]
    assert errors[0].message.startswith("must be a regular expression that RE2 accepts (")
    assert errors[0].message.endswith(")") and "b'" not in errors[0].message


def test_pattern_checked_only_for_regex():
    conditions = [{"name": "visitor_page_url", "value": "(a+)+$", "cmp": "contains"}]
    assert validate_conditions(conditions) == (conditions, [])


def test_compile_regex_uses_re2():
    assert compile_regex(r"^/pricing(/|$)").search("/pricing/plans")
    with pytest.raises(ValueError, match=r"nested|repeat"):
        compile_regex("(a+)+$")


# ----------------------------------------------------------------------------- actions


def message(**fields):
    return {"name": "message", "agent_nick": "Support", "message": "Hello", **fields}


def test_actions_accepted():
    twenty = [message(message=f"Hello {i}") for i in range(20)]
    assert validate_actions(twenty) == (twenty, [])
    edges = [message(agent_nick="n" * 100, message="m" * 2000), message(message="Hi\tthere\nHow can we help?")]
    assert validate_actions(edges) == (edges, [])


def test_action_fields_in_canonical_order():
    actions, _ = validate_actions([{"message": "Hi", "agent_nick": "Jo", "name": "message"}])
    assert json.dumps(actions) == '[{"name": "message", "agent_nick": "Jo", "message": "Hi"}]'


@pytest.mark.parametrize(
    "raw, errors",
    [
        (None, [FieldError("actions", "must be a list")]),
        ({}, [FieldError("actions", "must be a list")]),
        ([], [FieldError("actions", "must have at least 1 item")]),
        ([message()] * 21, [FieldError("actions", "must have at most 20 items")]),
        (["message"], [FieldError("actions[0]", "must be an object")]),
        ([{"agent_nick": "A", "message": "B"}], [FieldError("actions[0].name", "is required")]),
        ([message(name="email")], [FieldError("actions[0].name", "is not a known action (allowed: message)")]),
        ([message(name=None)], [FieldError("actions[0].name", "is not a known action (allowed: message)")]),
        (
            [message(delay=5)],
            [FieldError("actions[0].delay", "is not a known field (allowed: name, agent_nick, message)")],
        ),
        (
            [{"name": "message"}],
            [FieldError("actions[0].agent_nick", "is required"), FieldError("actions[0].message", "is required")],
        ),
        ([message(agent_nick="")], [FieldError("actions[0].agent_nick", "must not be empty")]),
        ([message(agent_nick="  ")], [FieldError("actions[0].agent_nick", "must not be blank")]),
        ([message(agent_nick="n" * 101)], [FieldError("actions[0].agent_nick", "must be at most 100 characters")]),
        ([message(agent_nick="A\tB")], [FieldError("actions[0].agent_nick", "must not contain control characters")]),
        ([message(agent_nick=5)], [FieldError("actions[0].agent_nick", "must be a string")]),
        ([message(message="")], [FieldError("actions[0].message", "must not be empty")]),
        ([message(message=" \n\t ")], [FieldError("actions[0].message", "must not be blank")]),
        ([message(message="m" * 2001)], [FieldError("actions[0].message", "must be at most 2000 characters")]),
        (
            [message(message="Hi\x00")],
            [FieldError("actions[0].message", "must not contain control characters other than tab and newline")],
        ),
        (
            [message(message="Hi\r\n")],
            [FieldError("actions[0].message", "must not contain control characters other than tab and newline")],
        ),
        ([message(message=None)], [FieldError("actions[0].message", "must be a string")]),
        (
            [message(), message(agent_nick="", extra=1), 7],
            [
                FieldError("actions[1].extra", "is not a known field (allowed: name, agent_nick, message)"),
                FieldError("actions[1].agent_nick", "must not be empty"),
                FieldError("actions[2]", "must be an object"),
            ],
        ),
    ],
)
def test_action_errors(raw, errors):
    assert validate_actions(raw) == ([], errors)
