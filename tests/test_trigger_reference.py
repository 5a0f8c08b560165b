"""The compiled engine is held to the reference decision (triggers/reference.py), a plain
reading of API.md's rules: on random triggers (every condition of the catalogue, every
comparator, values as the API accepts them) and random visitors, the decisions evaluate
answers, built the way the server builds them (triggers/service.py compiles the stored rows
into a plan, the API's model validates the visitor, ``engine.context``, ``Plan.run``), equal
the reference's, trigger by trigger.

OPENSUPP_REFERENCE_EXAMPLES sets how many random situations to try (default 300, CI's).
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opensupp.officehours.validation import tzinfo_of
from opensupp.triggers import api, engine, reference, service
from opensupp.triggers.catalogue import CONDITIONS, MAX_MAGNITUDE, regex_problem
from opensupp.web.fields import validate

UTC = datetime.UTC
MONDAY_10 = datetime.datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
EXAMPLES = int(os.environ.get("OPENSUPP_REFERENCE_EXAMPLES", "300"))
IDS = ["1", "2", "3", "4"]
ZONES = [0, 5.5, -12, 14, "Europe/Prague", "America/New_York"]


def server_decisions(
    triggers: list[dict[str, Any]], visitor: dict[str, Any], event: str, now: datetime.datetime, timezone: float | str
) -> list[dict[str, Any]]:
    """The decisions as POST .../triggers/evaluate answers them (its ``triggers``), parsed."""
    sources = [service.Stored(int(t["id"]), t["active"], t["name"], t["event"], t["only_once"], t["constraints"],
             orjson.dumps(t["conditions"]).decode()) for t in triggers]
    planned = service._build(sources, None)
    body = validate(api.TriggerEvaluate, {"event": event, "visitor": visitor})
    ctx = engine.context(body.event, body.visitor, now, tzinfo_of(timezone))
    return orjson.loads(planned.plan.run(ctx))


def reference_decisions(
    triggers: list[dict[str, Any]], visitor: dict[str, Any], event: str, now: datetime.datetime, timezone: float | str
) -> list[dict[str, Any]]:
    return [reference.decide(t, visitor, event=event, now=now, timezone=timezone) for t in triggers]


def agree(triggers, visitor=None, event="onload", now=MONDAY_10, timezone=0) -> list[dict[str, Any]]:
    """Both sides' decisions, asserted equal trigger by trigger, key order included."""
    visitor = visitor or {}
    server = server_decisions(triggers, visitor, event, now, timezone)
    expected = reference_decisions(triggers, visitor, event, now, timezone)
    for got, want in zip(server, expected, strict=True):
        assert got == want
        assert list(got) == list(want) and [list(r) for r in got["reasons"]] == [list(r) for r in want["reasons"]]
    return server


def stored(*conditions, id="7", constraints="all", **fields) -> dict[str, Any]:
    """A trigger as the API stores and answers it."""
    return {"id": id, "active": True, "name": "t", "description": "", "event": "onload", "only_once": True,
            "constraints": constraints, "conditions": list(conditions),
            "actions": [{"name": "message", "agent_nick": "A", "message": "Hi"}]} | fields


def cond(name, value, cmp=None):
    return {"name": name, "value": value} | ({"cmp": cmp} if cmp else {})


# ----------------------------------------------------------------------------- API.md's examples

GUIDE = [cond("delay_site", 60), cond("is_visitor_send_message", False), cond("is_visitor_served", False),
         cond("number_of_visits", 1)]


def test_the_guides_trigger():
    (first,) = agree([stored(*GUIDE)])
    assert (first["fires"], first["after"], first["why"]) == ("later", 60, None)
    assert agree([stored(*GUIDE)], {"seconds_on_site": "20"})[0]["after"] == 40
    (returning,) = agree([stored(*GUIDE)], {"number_of_visits": 2})
    assert returning["why"] == "conditions: number_of_visits eq 1 does not hold in 60 s (actual: 2)"
    assert agree([stored(*GUIDE)], {"is_visitor_send_message": "true"})[0]["fires"] == "never"


def test_sixty_seconds_on_the_site_then_on_the_pricing_page():
    trigger = stored(cond("delay_site", 60), cond("visitor_page_url", "/pricing", "contains"))
    assert agree([trigger], {"visitor_page_url": "https://shop.test/Pricing", "seconds_on_site": 45})[0]["after"] == 15
    (elsewhere,) = agree([trigger], {"visitor_page_url": "https://shop.test/"})
    assert elsewhere["why"] == 'conditions: visitor_page_url contains "/pricing" does not hold in 60 s ' \
                               '(actual: "https://shop.test/")'


def test_country_codes_ignore_case_and_an_empty_group_matches_visitors_without_one():
    assert agree([stored(cond("visitor_country_code", "CZ"))], {"visitor_country_code": "cz"})[0]["fires"] == "now"
    assert agree([stored(cond("visitor_group", ""))], {"visitor_group": None})[0]["fires"] == "now"
    assert agree([stored(cond("visitor_group", ""))], {"visitor_group": "vip"})[0]["fires"] == "never"


def test_no_conditions_fire_for_everyone_and_the_gates_say_why():
    out = agree([stored(id="1"), stored(id="2", active=False), stored(id="3", event="onmessage"),
                 stored(id="4", constraints="any")], {"fired_triggers": ["1"]})
    assert [(d["fires"], d["why"]) for d in out] == [
        ("never", "only_once: trigger 1 has already fired for this visitor (fired_triggers)"),
        ("never", "inactive: the trigger's active is false"),
        ("never", "event: the trigger runs onmessage, not onload"),
        ("now", None),
    ]


def test_day_of_week_1_is_monday_and_month_0_is_january_in_the_office_hours_timezone():
    late_sunday = datetime.datetime(2026, 1, 4, 23, 30, tzinfo=UTC)
    triggers = [stored(cond("day_of_week", 1), id="1"), stored(cond("month_of_year", 0), id="2"),
                stored(cond("hour_of_day", 5), id="3")]
    assert [d["fires"] for d in agree(triggers, now=late_sunday, timezone=5.5)] == ["now", "now", "now"]
    new_york = agree(triggers, now=late_sunday, timezone="America/New_York")  # still Sunday 18:30 there
    assert [d["fires"] for d in new_york] == ["never", "now", "never"]


def test_any_fires_at_the_earliest_and_a_trigger_the_catalogue_refuses_never_fires():
    either = stored(cond("delay_site", 60), cond("delay_page", 30, "gt"), constraints="any")
    assert agree([either], {"seconds_on_site": 20})[0]["after"] == 11
    (broken,) = agree([stored(cond("hour_of_day", 24))])
    assert broken["why"] == "conditions: cannot be evaluated (conditions[0].value: must be a whole number from 0 to 23)"


def test_strings_ignore_case_by_casefolding_and_regexes_match_characters():
    triggers = [stored(cond("visitor_city", "STRASSE"), id="1"),
                stored(cond("visitor_city", "^.{6}$", "regex"), id="2"),
                stored(cond("visitor_city", "(?i)^STRASSE$", "regex"), id="3"),
                stored(cond("visitor_city", "😀", "contains"), id="4")]
    out = agree(triggers, {"visitor_city": "Straße"})
    assert [d["fires"] for d in out] == ["now", "now", "never", "never"]  # RE2's (?i) folds ß to itself only
    assert agree(triggers[3:], {"visitor_city": "x😀"})[0]["fires"] == "now"


def test_a_time_past_the_calendar_does_not_hold():
    (d,) = agree([stored(cond("delay_site", MAX_MAGNITUDE), cond("hour_of_day", 0, "gte"))],
                 now=datetime.datetime(9999, 12, 31, 12, tzinfo=UTC))
    assert d["fires"] == "never" and d["reasons"][1]["actual"] is None


# ----------------------------------------------------------------------------- random triggers and visitors

# strings with case and Unicode traps: casefolding (ß/SS, ﬁ/FI), dotted I, Greek final sigma,
# quotes and backslashes (JSON escapes), characters outside the BMP
WORDS = ["", "a", "A", "ab", "Ab", "/pricing", "/PRICING/x", "ß", "SS", "ss", "ﬁ", "FI", "İ", "i̇", "Σ", "ς", "σ",
         "日本", "😀", 'q"u', "a\\b", "Straße", "STRASSE", " ", "60"]
# regular expressions from a small safe alphabet (each piece valid; no repeat of a repeat)
REGEX_PIECES = ["a", "A", "ß", "/p", ".", "[a-c]", "[^a]", "\\.", "日", "b+", "c*", "(ab)?", "x|y", "\\w", "\\d", "😀"]
REGEXES = st.builds(
    lambda case, start, pieces, end: case + start + "".join(pieces) + end,
    st.sampled_from(["", "(?i)"]), st.sampled_from(["", "^"]), st.lists(st.sampled_from(REGEX_PIECES), max_size=3),
    st.sampled_from(["", "$"]),
).filter(lambda pattern: regex_problem(pattern) is None)
BIG = MAX_MAGNITUDE


def _as_sent(number: int) -> st.SearchStrategy[Any]:
    """A number as a client may send it: itself, or its decimal string (leading zeros allowed)."""
    return st.sampled_from([number, str(number), f"0{number}"] if 0 <= number < 10**17 else [number, str(number)])


def _numbers(low: int, high: int | None) -> st.SearchStrategy[int]:
    small = st.integers(low, min(high if high is not None else low + 200, low + 200))
    edges = [low] + ([high] if high is not None else [BIG])
    return st.one_of(small, st.sampled_from(edges))


def _condition(name: str) -> st.SearchStrategy[dict[str, Any]]:
    spec = CONDITIONS[name]
    if spec.type == "number":
        values = _numbers(spec.min if spec.min is not None else -BIG, spec.max).flatmap(_as_sent)
    elif spec.type == "boolean":
        values = st.sampled_from([True, False, "true", "false", "1", "0"])
    elif spec.type == "enum":
        values = st.sampled_from(spec.values)
    else:
        values = st.sampled_from(WORDS)
    plain = st.builds(lambda v, cmp: cond(name, v, cmp), values, st.sampled_from([None, *spec.comparators]))
    if "regex" in spec.comparators:
        # (plain ones with cmp regex too: their words must be valid patterns, or the trigger is refused)
        return st.one_of(plain, st.builds(lambda v: cond(name, v, "regex"), REGEXES))
    return plain


CONDITION = st.one_of([_condition(name) for name in CONDITIONS])
# what the catalogue refuses: the trigger cannot be evaluated
REFUSED = st.sampled_from([cond("hour_of_day", 24), cond("shoe_size", 1), cond("number_of_visits", 1, "contains"),
                           cond("visitor_page_url", "(a+)+$", "regex")])


@st.composite
def triggers(draw) -> list[dict[str, Any]]:
    out = []
    for k in range(draw(st.integers(1, 4))):
        conditions = draw(st.lists(CONDITION, max_size=6))
        if draw(st.integers(0, 19)) == 0:
            conditions.insert(draw(st.integers(0, len(conditions))), draw(REFUSED))
        out.append(stored(
            *conditions, id=IDS[k], constraints=draw(st.sampled_from(["all", "any"])),
            active=draw(st.booleans()), event=draw(st.sampled_from(engine.EVENTS)), only_once=draw(st.booleans()),
            name=draw(st.sampled_from(["t", 'say "hi"', "Ünïcode 日本", "back\\slash"])),
        ))
    return out


def _visitor_number(low: int) -> st.SearchStrategy[Any]:
    return _numbers(low, None).flatmap(_as_sent)


CLOCK = st.one_of(st.integers(0, 300), st.sampled_from([0, BIG])).flatmap(_as_sent)
TEXT = st.one_of(st.none(), st.sampled_from(WORDS), st.sampled_from(["https://shop.test/pricing?x=1", "Brno", "CZ"]))
FLAG = st.sampled_from([True, False, "true", "false", "1", "0"])
VISITORS = st.fixed_dictionaries({}, optional={
    "seconds_on_site": CLOCK, "seconds_on_page": CLOCK,
    "number_of_visits": _visitor_number(1), "number_of_pages": _visitor_number(1),
    "number_of_chats": _visitor_number(0),
    "is_visitor_send_message": FLAG, "is_visitor_served": FLAG, "is_triggered": FLAG,
    **{name: TEXT for name, spec in CONDITIONS.items() if spec.type == "string"},
    "account_status": st.sampled_from(["online", "offline"]),
    "fired_triggers": st.lists(st.sampled_from([*IDS, 1, 3]), max_size=3),  # (an id may come as a number)
})
INSTANTS = st.one_of(
    st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.datetimes(datetime.datetime(9999, 12, 30), datetime.datetime(9999, 12, 31, 23), timezones=st.just(UTC)),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(triggers(), VISITORS, st.sampled_from(engine.EVENTS), INSTANTS, st.sampled_from(ZONES))
def test_the_engine_decides_as_the_reference(triggers, visitor, event, now, timezone):
    agree(triggers, visitor, event, now, timezone)
