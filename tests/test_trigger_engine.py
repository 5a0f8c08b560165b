"""The trigger engine (triggers/engine.py), pure: tables of cases per comparator and type,
delays as waits, time in a timezone, the gates, and hypothesis properties."""

from __future__ import annotations

import datetime
import time
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opensupp.officehours.validation import tzinfo_of
from opensupp.triggers import engine
from opensupp.triggers.catalogue import CONDITIONS, validate_conditions

UTC = datetime.UTC
MONDAY_10 = datetime.datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)  # a Monday, 10:00 UTC
GUIDE_CONDITIONS = [
    {"name": "delay_site", "value": 60}, {"name": "is_visitor_send_message", "value": False},
    {"name": "is_visitor_served", "value": False}, {"name": "number_of_visits", "value": 1},
]


def cond(name, value, cmp=None):
    return {"name": name, "value": value} | ({"cmp": cmp} if cmp else {})


def trigger(*conditions, constraints="all", **fields):
    stored = {"id": "7", "name": "t", "active": True, "event": "onload", "only_once": True,
              "constraints": constraints, "conditions": list(conditions)} | fields
    return engine.compile_trigger(stored)


def decide(*conditions, visitor=None, event="onload", at=MONDAY_10, tz=UTC, constraints="all", **fields):
    return engine.evaluate(trigger(*conditions, constraints=constraints, **fields), event, at, tz, visitor or {})


def holds(condition, visitor, **kw):
    """Whether one filter condition holds now (and its reason agrees)."""
    d = decide(condition, visitor=visitor, **kw)
    assert d["reasons"][0]["ok"] is (d["fires"] == "now")
    return d["fires"] == "now"


# ----------------------------------------------------------------------------- tables per type


@pytest.mark.parametrize("cmp,value,actual,expected", [
    ("eq", 1, 1, True), ("eq", 1, 2, False),
    ("not_eq", 1, 2, True), ("not_eq", 1, 1, False),
    ("gt", 3, 4, True), ("gt", 3, 3, False), ("gt", 3, 2, False),
    ("gte", 3, 3, True), ("gte", 3, 4, True), ("gte", 3, 2, False),
    ("lt", 3, 2, True), ("lt", 3, 3, False), ("lt", 3, 4, False),
    ("lte", 3, 3, True), ("lte", 3, 2, True), ("lte", 3, 4, False),
])
@pytest.mark.parametrize("name", ["number_of_visits", "number_of_pages", "number_of_chats"])
def test_numbers(name, cmp, value, actual, expected):
    assert holds(cond(name, value, cmp), {name: actual}) is expected


def test_numbers_compare_as_integers_at_the_bounds():
    big = 10**18 - 1
    assert holds(cond("number_of_chats", big, "lt"), {"number_of_chats": big - 1})
    assert holds(cond("number_of_chats", 0, "gte"), {})  # default 0
    assert not holds(cond("number_of_chats", 0, "gt"), {})


@pytest.mark.parametrize("cmp,value,actual,expected", [
    # eq / not_eq ignore case (casefolding: full Unicode, not only ASCII)
    ("eq", "/pricing", "/pricing", True), ("eq", "/Pricing", "/PRICING", True), ("eq", "/pricing", "/pricing/", False),
    ("eq", "STRASSE", "straße", True), ("not_eq", "/pricing", "/PRICING", False), ("not_eq", "/a", "/b", True),
    # contains / not_contains
    ("contains", "pricing", "https://shop.test/Pricing?plan=1", True),
    ("contains", "pricing", "https://shop.test/", False),
    ("not_contains", "pricing", "https://shop.test/", True), ("not_contains", "PRICING", "/pricing", False),
    ("contains", "", "anything", True), ("not_contains", "", "anything", False),
    # start_with / not_start_with
    ("start_with", "https://shop", "HTTPS://SHOP.test/x", True), ("start_with", "/shop", "https://shop.test", False),
    ("not_start_with", "https://shop", "http://shop.test", True), ("not_start_with", "HTTP", "http://x", False),
    # regex: a search, case-sensitive unless the pattern says (?i)
    ("regex", "/pricing", "https://shop.test/pricing?x", True),
    ("regex", "^/pricing$", "https://shop.test/pricing", False),
    ("regex", "/pricing", "https://shop.test/PRICING", False),
    ("regex", "(?i)/pricing", "https://shop.test/PRICING", True),
    ("regex", "^https://(www\\.)?shop\\.test/p[0-9]+$", "https://www.shop.test/p42", True),
    ("regex", "^$", "", True),
])
@pytest.mark.parametrize("name", ["visitor_page_url", "visitor_referer", "visitor_page_title"])
def test_strings(name, cmp, value, actual, expected):
    assert holds(cond(name, value, cmp), {name: actual}) is expected


@pytest.mark.parametrize(
    "name", ["visitor_group", "visitor_ip", "visitor_city", "visitor_country_code", "visitor_language"]
)
def test_every_string_condition_ignores_case_and_a_missing_value_is_empty(name):
    assert holds(cond(name, "Abc"), {name: "aBC"})
    assert holds(cond(name, ""), {name: None})  # null: unknown, compares as ""
    assert holds(cond(name, ""), {})  # absent: the same
    assert not holds(cond(name, "x", "contains"), {name: None})
    assert holds(cond(name, "x", "not_contains"), {})


def test_country_code_and_group_as_api_md_says():
    assert holds(cond("visitor_country_code", "CZ"), {"visitor_country_code": "cz"})
    assert holds(cond("visitor_group", ""), {})  # "" matches visitors without a group
    assert not holds(cond("visitor_group", ""), {"visitor_group": "vip"})


@pytest.mark.parametrize("name", ["is_visitor_served", "is_visitor_send_message", "is_triggered"])
@pytest.mark.parametrize("cmp,value,actual,expected", [
    ("eq", True, True, True), ("eq", True, False, False), ("eq", False, False, True), ("eq", False, True, False),
    ("not_eq", True, False, True), ("not_eq", True, True, False), ("not_eq", False, True, True),
])
def test_booleans(name, cmp, value, actual, expected):
    assert holds(cond(name, value, cmp), {name: actual}) is expected


@pytest.mark.parametrize("cmp,value,actual,expected", [
    ("eq", "online", "online", True), ("eq", "online", "offline", False),
    ("not_eq", "online", "offline", True), ("not_eq", "offline", "offline", False),
])
def test_enum_account_status(cmp, value, actual, expected):
    assert holds(cond("account_status", value, cmp), {"account_status": actual}) is expected


def test_every_catalogue_name_and_comparator_compiles():
    values = {"number": 1, "string": "x", "boolean": True, "enum": "online"}
    for name, spec in CONDITIONS.items():
        for cmp in spec.comparators:
            condition = cond(name, values[spec.type], cmp)
            assert validate_conditions([condition])[1] == []
            decision = decide(condition)
            assert decision["fires"] in ("now", "later", "never")
            assert [r["name"] for r in decision["reasons"]] == [name]


def test_what_the_catalogue_refuses_does_not_compile():
    for bad in (cond("shoe_size", 1), cond("hour_of_day", 1, "contains"), cond("visitor_page_url", "(a+)+$", "regex")):
        with pytest.raises(ValueError):
            trigger(bad)


def test_regex_matches_unicode_as_characters():
    assert holds(cond("visitor_city", "^Pla.$", "regex"), {"visitor_city": "Plaž"})
    assert holds(cond("visitor_city", "(?i)^ŽILINA$", "regex"), {"visitor_city": "žilina"})
    assert not holds(cond("visitor_city", "^ŽILINA$", "regex"), {"visitor_city": "žilina"})


def test_compiling_checks_the_stored_conditions_with_the_catalogue_again():
    assert decide(cond("delay_site", "60"), visitor={"seconds_on_site": 20})["after"] == 40  # as the API coerces
    with pytest.raises(ValueError, match=r"conditions\[1\]\.value: must be a whole number from 0 to 23"):
        trigger(cond("number_of_visits", 1), cond("hour_of_day", 24))


def test_regex_runs_in_linear_time():
    # a pattern that a backtracking engine needs exponential time for is refused outright...
    with pytest.raises(ValueError):
        trigger(cond("visitor_page_url", "^(a|aa)+$", "regex"))
    # ...and an allowed one is matched by RE2 in linear time, even where re would crawl
    started = time.perf_counter()
    assert not holds(cond("visitor_page_url", "a*a*a*a*a*a*a*b", "regex"), {"visitor_page_url": "a" * 1000})
    assert time.perf_counter() - started < 1


def test_reasons_carry_name_cmp_expected_actual_ok():
    d = decide(cond("number_of_visits", 2, "gte"), cond("visitor_page_url", "/Pricing", "contains"),
               visitor={"number_of_visits": 3, "visitor_page_url": "https://x.test/"})
    assert d == {
        "id": "7", "name": "t", "fires": "never", "after": None,
        "why": 'conditions: visitor_page_url contains "/Pricing" does not hold (actual: "https://x.test/")',
        "reasons": [
            {"name": "number_of_visits", "cmp": "gte", "expected": 2, "actual": 3, "ok": True},
            {"name": "visitor_page_url", "cmp": "contains", "expected": "/Pricing", "actual": "https://x.test/",
             "ok": False},
        ],
    }


def test_cmp_defaults_to_eq_in_the_reason():
    assert decide(cond("number_of_visits", 1))["reasons"][0]["cmp"] == "eq"


# ----------------------------------------------------------------------------- delays


def test_guide_example_first_time_visitor_fires_after_60_s():
    d = decide(*GUIDE_CONDITIONS)  # the defaults: first visit, first page, just arrived
    assert (d["fires"], d["after"], d["why"]) == ("later", 60, None)
    assert [r["ok"] for r in d["reasons"]] == [True] * 4
    assert [(r.get("at"), r.get("wait")) for r in d["reasons"]] == [(None, 60), (60, None), (60, None), (60, None)]


def test_guide_example_after_20_s_fires_in_40_s_and_after_60_s_now():
    assert decide(*GUIDE_CONDITIONS, visitor={"seconds_on_site": 20})["after"] == 40
    assert decide(*GUIDE_CONDITIONS, visitor={"seconds_on_site": 60})["fires"] == "now"
    assert decide(*GUIDE_CONDITIONS, visitor={"seconds_on_site": 600})["after"] == 0


def test_guide_example_returning_visitor_never():
    d = decide(*GUIDE_CONDITIONS, visitor={"number_of_visits": 2})
    assert (d["fires"], d["after"]) == ("never", None)
    assert d["why"] == "conditions: number_of_visits eq 1 does not hold in 60 s (actual: 2)"
    assert d["reasons"][3] == {
        "name": "number_of_visits", "cmp": "eq", "expected": 1, "actual": 2, "ok": False, "at": 60
    }


def test_guide_example_visitor_who_wrote_or_is_served_never():
    assert decide(*GUIDE_CONDITIONS, visitor={"is_visitor_served": True})["fires"] == "never"
    assert decide(*GUIDE_CONDITIONS, event="onload", visitor={"is_visitor_send_message": True})["fires"] == "never"


@pytest.mark.parametrize("cmp,value,site,after", [
    ("eq", 60, 20, 40), ("gte", 60, 20, 40), ("gt", 60, 20, 41), ("gt", 60, 60, 1), ("gt", 60, 61, 0),
    ("eq", 60, 60, 0), ("eq", 60, 90, 0),
])
def test_delay_waits(cmp, value, site, after):
    d = decide(cond("delay_site", value, cmp), visitor={"seconds_on_site": site})
    assert d["after"] == after and d["fires"] == ("later" if after else "now")
    assert d["reasons"][0] == {"name": "delay_site", "cmp": cmp, "expected": value, "actual": site, "ok": True,
                               "wait": after}


@pytest.mark.parametrize("cmp,value,site,ok", [
    ("lt", 60, 59, True), ("lt", 60, 60, False), ("lte", 60, 60, True), ("lte", 60, 61, False),
    ("not_eq", 60, 59, True), ("not_eq", 60, 60, False),
])
def test_delay_with_lt_lte_not_eq_is_a_filter_on_its_clock(cmp, value, site, ok):
    d = decide(cond("delay_site", value, cmp), visitor={"seconds_on_site": site})
    assert d["fires"] == ("now" if ok else "never")
    assert "wait" not in d["reasons"][0] and d["reasons"][0]["actual"] == site


def test_delay_page_waits_on_the_page_clock_which_defaults_to_the_site_clock():
    assert decide(cond("delay_page", 30), visitor={"seconds_on_site": 100, "seconds_on_page": 10})["after"] == 20
    assert decide(cond("delay_page", 30), visitor={"seconds_on_site": 10})["after"] == 20


def test_delays_in_order_both_clocks_advance():
    visitor = {"seconds_on_site": 20, "seconds_on_page": 5}
    d = decide(cond("delay_site", 30), cond("delay_page", 50), visitor=visitor)
    # 10 s until 30 s on the site (the page clock is at 15 then), then 35 s more on the page
    assert [(r["actual"], r.get("at"), r["wait"]) for r in d["reasons"]] == [(20, None, 10), (15, 10, 35)]
    assert d["after"] == 45
    d = decide(cond("delay_page", 50), cond("delay_site", 30), visitor=visitor)
    assert [(r["actual"], r.get("at"), r["wait"]) for r in d["reasons"]] == [(5, None, 45), (65, 45, 0)]
    assert d["after"] == 45


def test_filters_after_a_delay_are_checked_when_it_has_elapsed():
    d = decide(cond("visitor_page_url", "/pricing", "contains"), cond("delay_site", 60),
               cond("delay_site", 70, "lt"), visitor={"visitor_page_url": "/pricing", "seconds_on_site": 5})
    # the clock filter is checked at 60 s on the site (in 55 s)
    assert [(r.get("at"), r["actual"], r["ok"]) for r in d["reasons"]] == [
        (None, "/pricing", True), (None, 5, True), (55, 60, True)
    ]
    assert d["after"] == 55
    d = decide(cond("delay_site", 60), cond("delay_site", 50, "lt"), visitor={"seconds_on_site": 5})
    assert d["fires"] == "never" and d["reasons"][1]["actual"] == 60


def test_time_after_a_delay_is_taken_at_the_projected_instant():
    at = datetime.datetime(2026, 5, 4, 10, 59, 30, tzinfo=UTC)
    conditions = (cond("delay_site", 60), cond("hour_of_day", 11))
    d = decide(*conditions, at=at, visitor={"seconds_on_site": 20})  # fires at 11:00:10
    assert (d["fires"], d["after"]) == ("later", 40)
    assert d["reasons"][1] == {"name": "hour_of_day", "cmp": "eq", "expected": 11, "actual": 11, "ok": True, "at": 40}
    assert decide(cond("hour_of_day", 11), *conditions[:1], at=at)["fires"] == "never"  # checked now: 10


def test_a_time_beyond_the_calendar_does_not_hold():
    d = decide(cond("delay_site", 10**18 - 1), cond("hour_of_day", 0, "gte"))
    assert d["fires"] == "never" and d["reasons"][1]["actual"] is None and d["reasons"][1]["at"] == 10**18 - 1


# ----------------------------------------------------------------------------- time in a timezone


@pytest.mark.parametrize("at,timezone,hour,dow,month", [
    ("2026-05-04T10:00:00+00:00", 0, 10, 1, 4),  # Monday 4 May
    ("2026-05-04T10:00:00+00:00", 2, 12, 1, 4),
    ("2026-05-04T10:00:00+00:00", -10.5, 23, 7, 4),  # still Sunday 3 May there
    ("2026-05-03T23:30:00+00:00", 5.5, 5, 1, 4),  # already Monday
    ("2026-01-01T03:59:00+00:00", "America/New_York", 22, 3, 11),  # New Year's Eve, Wednesday 31 December
    ("2026-01-01T05:00:00+00:00", "America/New_York", 0, 4, 0),  # midnight, Thursday 1 January
    ("2026-07-01T04:00:00+00:00", "America/New_York", 0, 3, 6),  # daylight saving: UTC-4
    ("2026-03-29T00:59:59+00:00", "Europe/Prague", 1, 7, 2),  # Sunday, before the spring change
    ("2026-03-29T01:00:00+00:00", "Europe/Prague", 3, 7, 2),  # after it: 02:00 never happens
])
def test_hour_day_and_month_in_the_office_hours_timezone(at, timezone, hour, dow, month):
    instant, tz = datetime.datetime.fromisoformat(at), tzinfo_of(timezone)
    for name, value in (("hour_of_day", hour), ("day_of_week", dow), ("month_of_year", month)):
        d = decide(cond(name, value), at=instant, tz=tz)
        assert d["reasons"][0]["actual"] == value
        assert d["fires"] == "now"
        assert decide(cond(name, value, "not_eq"), at=instant, tz=tz)["fires"] == "never"


def test_day_of_week_is_1_monday_to_7_sunday_and_month_0_is_january():
    monday = datetime.datetime(2026, 1, 5, 12, tzinfo=UTC)
    days = [decide(cond("day_of_week", 1), at=monday + datetime.timedelta(days=i))["reasons"][0]["actual"]
            for i in range(7)]
    assert days == [1, 2, 3, 4, 5, 6, 7]
    months = [decide(cond("month_of_year", 0), at=monday.replace(month=m))["reasons"][0]["actual"]
              for m in range(1, 13)]
    assert months == list(range(12))


def test_the_instant_must_be_aware():
    with pytest.raises(ValueError):
        decide(cond("hour_of_day", 1), at=datetime.datetime(2026, 1, 1))


# ----------------------------------------------------------------------------- any, empty, gates


def test_any_fires_at_the_earliest_condition_each_on_its_own():
    on_pricing = {"visitor_page_url": "/pricing", "seconds_on_site": 20}
    conditions = (cond("delay_site", 60), cond("visitor_page_url", "/pricing", "contains"))
    d = decide(*conditions, constraints="any", visitor=on_pricing)
    assert (d["fires"], d["after"]) == ("now", 0)  # the filter after the delay is checked now
    assert [(r.get("at"), r.get("wait"), r["ok"]) for r in d["reasons"]] == [(None, 40, True), (None, None, True)]
    d = decide(*conditions, constraints="any", visitor={"seconds_on_site": 20})
    assert (d["fires"], d["after"]) == ("later", 40)
    d = decide(cond("delay_site", 60), cond("delay_page", 30), constraints="any", visitor={"seconds_on_site": 20})
    assert d["after"] == 10  # the waits do not chain: the earlier one wins


def test_any_with_nothing_holding_never():
    d = decide(cond("number_of_visits", 2), cond("is_visitor_served", True), constraints="any")
    assert (d["fires"], d["why"]) == ("never", "conditions: none of the 2 holds (constraints: any)")


@pytest.mark.parametrize("constraints", ["all", "any"])
def test_no_conditions_fires_now_for_everyone(constraints):
    d = decide(constraints=constraints, visitor={"number_of_visits": 9})
    assert (d["fires"], d["after"], d["why"], d["reasons"]) == ("now", 0, None, [])


def test_inactive_never_but_the_reasons_are_still_there():
    d = decide(*GUIDE_CONDITIONS, active=False)
    assert (d["fires"], d["after"], d["why"]) == ("never", None, "inactive: the trigger's active is false")
    assert len(d["reasons"]) == 4 and d["reasons"][0]["wait"] == 60


@pytest.mark.parametrize("runs_on,event,fires", [
    ("onload", "onload", "now"), ("onload", "onmessage", "never"), ("onmessage", "onmessage", "now"),
    ("onopen", "onopen", "now"), ("onopen", "onload", "never"),
])
def test_event(runs_on, event, fires):
    d = engine.evaluate(trigger(event=runs_on), event, MONDAY_10, UTC, {})
    assert d["fires"] == fires
    if fires == "never":
        assert d["why"] == f"event: the trigger runs {runs_on}, not {event}"


def test_only_once():
    fired = {"fired_triggers": ["3", "7"]}
    d = decide(visitor=fired)
    assert (d["fires"], d["why"]) == (
        "never", "only_once: trigger 7 has already fired for this visitor (fired_triggers)"
    )
    assert decide(visitor=fired, only_once=False)["fires"] == "now"
    assert decide(visitor={"fired_triggers": ["70"]})["fires"] == "now"


def test_derived_defaults():
    ctx = engine.context("onmessage", {"seconds_on_site": 30, "fired_triggers": [3]}, MONDAY_10, UTC)
    assert ctx.values["seconds_on_page"] == 30
    assert ctx.values["is_triggered"] is True and ctx.values["fired_triggers"] == ["3"]
    assert ctx.values["is_visitor_send_message"] is True
    ctx = engine.context("onload", {"is_triggered": False, "fired_triggers": ["3"], "is_visitor_send_message": False},
                        MONDAY_10, UTC)
    assert ctx.values["is_triggered"] is False and ctx.values["is_visitor_send_message"] is False
    first = engine.context("onload", {}, MONDAY_10, UTC).values
    assert first == engine.FIRST_VISIT


def test_a_trigger_that_cannot_compile_never_fires_and_says_why():
    stored = {"id": "9", "name": "old", "active": True, "event": "onload", "only_once": True, "constraints": "all"}
    d = engine.decide(engine.unusable(stored, "conditions: cannot be evaluated (x)"),
                     engine.context("onload", {}, MONDAY_10, UTC))
    assert (d["id"], d["fires"], d["why"], d["reasons"]) == ("9", "never", "conditions: cannot be evaluated (x)", [])


def test_evaluate_all_keeps_the_order():
    triggers = [trigger(id=str(i), conditions=[cond("number_of_visits", i)]) for i in (3, 1, 2)]
    out = engine.evaluate_all(triggers, "onload", MONDAY_10, UTC, {})
    assert [(d["id"], d["fires"]) for d in out] == [("3", "never"), ("1", "now"), ("2", "never")]


# ----------------------------------------------------------------------------- properties

NEGATION = {"eq": "not_eq", "not_eq": "eq", "gt": "lte", "lte": "gt", "gte": "lt", "lt": "gte",
            "contains": "not_contains", "not_contains": "contains", "start_with": "not_start_with",
            "not_start_with": "start_with"}
WORDS = st.sampled_from(["", "a", "A", "ab", "/pricing", "/Pricing/x", "ß", "SS"])
SMALL = st.integers(0, 4)
FILTERS = st.one_of(
    st.tuples(st.sampled_from(["number_of_visits", "number_of_pages"]),
              st.sampled_from(["eq", "not_eq", "gt", "gte", "lt", "lte"]), st.integers(1, 4)),
    st.tuples(st.just("number_of_chats"), st.sampled_from(["eq", "gt", "lte"]), SMALL),
    st.tuples(st.sampled_from(["visitor_page_url", "visitor_city", "visitor_group"]),
              st.sampled_from(["eq", "not_eq", "contains", "not_contains", "start_with", "not_start_with"]), WORDS),
    st.tuples(st.sampled_from(["is_visitor_served", "is_triggered"]), st.sampled_from(["eq", "not_eq"]), st.booleans()),
    st.tuples(st.just("account_status"), st.sampled_from(["eq", "not_eq"]), st.sampled_from(["online", "offline"])),
    st.tuples(st.just("hour_of_day"), st.sampled_from(["gte", "lt"]), st.integers(0, 23)),
)
# a delay's lt and lte are filters on its clock, but their negations (gte, gt) are waits
CLOCK_FILTERS = st.tuples(st.just("delay_site"), st.sampled_from(["lt", "lte"]), st.integers(1, 60))
VISITORS = st.fixed_dictionaries({}, optional={
    "seconds_on_site": st.integers(0, 90), "seconds_on_page": st.integers(0, 90),
    "number_of_visits": st.integers(1, 4), "number_of_pages": st.integers(1, 4), "number_of_chats": SMALL,
    "visitor_page_url": WORDS, "visitor_city": st.one_of(st.none(), WORDS), "visitor_group": WORDS,
    "is_visitor_served": st.booleans(), "is_triggered": st.booleans(),
    "account_status": st.sampled_from(["online", "offline"]),
    "fired_triggers": st.lists(st.sampled_from(["1", "7"]), max_size=2),
})
INSTANTS = st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2100, 1, 1), timezones=st.just(UTC))
ZONES = st.sampled_from([tzinfo_of(0), tzinfo_of(5.5), tzinfo_of(-12), zoneinfo.ZoneInfo("America/New_York")])
EXAMPLES = settings(max_examples=100, deadline=None)


@EXAMPLES
@given(st.lists(FILTERS, min_size=1, max_size=5), VISITORS, INSTANTS, ZONES)
def test_any_is_not_all_of_the_negations(filters, visitor, at, tz):
    """For filters, `any` fires (now) exactly when `all` of the negated filters does not."""
    conditions = [cond(n, v, c) for n, c, v in filters]
    negated = [cond(n, v, NEGATION[c]) for n, c, v in filters]
    common = dict(visitor=visitor, at=at, tz=tz, only_once=False)
    anyone = decide(*conditions, constraints="any", **common)
    every_negation = decide(*negated, constraints="all", **common)
    assert anyone["fires"] in ("now", "never") and every_negation["fires"] in ("now", "never")
    assert (anyone["fires"] == "now") is (every_negation["fires"] == "never")
    # condition by condition, each and its negation disagree
    assert [r["ok"] for r in anyone["reasons"]] == [not r["ok"] for r in every_negation["reasons"]]


WAITS = st.lists(st.tuples(st.sampled_from(["delay_site", "delay_page"]), st.integers(1, 200)), min_size=1, max_size=4)


@EXAMPLES
@given(WAITS, st.integers(0, 300), st.integers(0, 300), st.randoms())
def test_delays_alone_wait_for_the_highest_threshold_in_any_order(waits, site, page, random):
    """With both clocks advancing, the total wait is what the slowest clock needs, whatever the order."""
    need = max(value - (site if name == "delay_site" else page) for name, value in waits)
    visitor = {"seconds_on_site": site, "seconds_on_page": page}
    shuffled = list(waits)
    random.shuffle(shuffled)
    for order in (waits, shuffled):
        d = decide(*[cond(n, v) for n, v in order], visitor=visitor)
        assert d["after"] == max(0, need)
        assert d["fires"] == ("later" if need > 0 else "now")
    later = decide(*[cond(n, v) for n, v in waits], visitor={"seconds_on_site": site + 5, "seconds_on_page": page + 5})
    assert later["after"] == max(0, need - 5)


@EXAMPLES
@given(st.lists(st.one_of(FILTERS, CLOCK_FILTERS, WAITS.map(lambda w: (w[0][0], "eq", w[0][1]))), max_size=5),
       st.sampled_from(["all", "any"]), st.sampled_from(engine.EVENTS), VISITORS, INSTANTS, ZONES)
def test_a_trigger_that_fired_once_never_fires_again_for_that_visitor(items, constraints, event, visitor, at, tz):
    compiled = trigger(*[cond(n, v, c) for n, c, v in items], constraints=constraints, event=event)
    first = engine.evaluate(compiled, event, at, tz, visitor)
    fired = {"fired_triggers": [*visitor.get("fired_triggers", []), "7"]}
    again = engine.evaluate(compiled, event, at, tz, visitor | fired)
    assert again["fires"] == "never" and again["after"] is None and again["why"].startswith("only_once")
    if first["fires"] != "never":
        assert first["why"] is None


@EXAMPLES
@given(st.lists(st.one_of(FILTERS, CLOCK_FILTERS, WAITS.map(lambda w: (w[0][0], "gt", w[0][1]))), max_size=5),
       st.sampled_from(["all", "any"]), st.booleans(), VISITORS, VISITORS, INSTANTS, ZONES)
def test_deterministic_and_decided_by_its_inputs(items, constraints, only_once, one, other, at, tz):
    """The same trigger and situation give the same decision, and two situations with equal
    inputs (what a caller may memoize on) give equal decisions."""
    stored = {"id": "7", "name": "t", "active": True, "event": "onload", "only_once": only_once,
              "constraints": constraints, "conditions": [cond(n, v, c) for n, c, v in items]}
    compiled = engine.compile_trigger(stored)
    first, second = engine.context("onload", one, at, tz), engine.context("onload", other, at, tz)
    assert engine.decide(compiled, first) == engine.decide(engine.compile_trigger(stored), first)
    if engine.inputs(compiled, first) == engine.inputs(compiled, second):
        assert engine.decide(compiled, first) == engine.decide(compiled, second)


def test_inputs_leave_out_what_the_trigger_does_not_read():
    compiled = trigger(cond("number_of_visits", 1), only_once=False)
    one = engine.context("onload", {"visitor_city": "Brno", "seconds_on_site": 5}, MONDAY_10, UTC)
    other = engine.context("onload", {"visitor_city": "Praha", "fired_triggers": ["7"]},
                           MONDAY_10 + datetime.timedelta(hours=3), UTC)
    assert engine.inputs(compiled, one) == engine.inputs(compiled, other)
    more_visits = engine.context("onload", {"number_of_visits": 2}, MONDAY_10, UTC)
    assert engine.inputs(compiled, one) != engine.inputs(compiled, more_visits)
    assert engine.inputs(compiled, one) != engine.inputs(compiled, engine.context("onopen", {}, MONDAY_10, UTC))
    timed = trigger(cond("hour_of_day", 10))
    assert engine.inputs(timed, one) != engine.inputs(timed, engine.context("onload", {}, MONDAY_10, tzinfo_of(1)))
