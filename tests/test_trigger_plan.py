"""The trigger engine's hot path (triggers/plan.py) runs compiled by Cython where the install
built it; the same file also runs as Python. Both must write the same bytes for every
plan and situation, and those bytes must be the JSON of what engine.py documents (the
engine's own tests, test_trigger_engine.py, check the semantics through whichever runs)."""

from __future__ import annotations

import datetime
import importlib.util
import zoneinfo
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opensupp.officehours.validation import tzinfo_of
from opensupp.triggers import engine, plan

UTC = datetime.UTC


def _source_module():
    """plan.py loaded as Python, whatever the installed module is."""
    spec = importlib.util.spec_from_file_location("opensupp_plan_as_python", Path(plan.__file__).with_name("plan.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AS_PYTHON = _source_module()
WORDS = st.sampled_from(
    ["", "a", "A", "ab", "/pricing", "/Pricing/x", "ß", "SS", 'q"uo\\te', "\x00ctl", "日本", "\u0085"]
)
NUMERIC = ["eq", "not_eq", "gt", "gte", "lt", "lte"]
CONDITIONS = st.one_of(
    st.tuples(st.sampled_from(["number_of_visits", "number_of_pages", "number_of_chats"]), st.sampled_from(NUMERIC),
              st.integers(0, 5)),
    st.tuples(st.sampled_from(["visitor_page_url", "visitor_city", "visitor_group", "visitor_referer"]),
              st.sampled_from(["eq", "not_eq", "contains", "not_contains", "start_with", "not_start_with"]), WORDS),
    st.tuples(st.just("visitor_page_url"), st.just("regex"), st.sampled_from(["^/p", "(?i)pri", "x$", "日", '"'])),
    st.tuples(st.sampled_from(["is_visitor_served", "is_triggered", "is_visitor_send_message"]),
              st.sampled_from(["eq", "not_eq"]), st.booleans()),
    st.tuples(st.just("account_status"), st.sampled_from(["eq", "not_eq"]), st.sampled_from(["online", "offline"])),
    st.tuples(st.sampled_from(["hour_of_day", "day_of_week", "month_of_year"]), st.sampled_from(NUMERIC),
              st.integers(1, 11)),
    st.tuples(st.sampled_from(["delay_site", "delay_page"]), st.sampled_from(NUMERIC),
              st.one_of(st.integers(0, 3000), st.just(plan.MAX_CLOCK))),
)
CLOCKS = st.one_of(st.integers(0, 3000), st.just(0), st.just(plan.MAX_CLOCK))
VISITORS = st.fixed_dictionaries({}, optional={
    "seconds_on_site": CLOCKS, "seconds_on_page": CLOCKS,
    "number_of_visits": st.integers(0, 5), "number_of_pages": st.integers(0, 5), "number_of_chats": st.integers(0, 5),
    "visitor_page_url": WORDS, "visitor_city": st.one_of(st.none(), WORDS), "visitor_group": WORDS,
    "visitor_referer": WORDS, "is_visitor_served": st.booleans(), "is_triggered": st.booleans(),
    "is_visitor_send_message": st.booleans(), "account_status": st.sampled_from(["online", "offline"]),
    "fired_triggers": st.lists(st.sampled_from(["1", "2", "3"]), max_size=2),
})
TRIGGERS = st.lists(st.tuples(st.lists(CONDITIONS, max_size=6), st.sampled_from(["all", "any"]), st.booleans(),
                              st.booleans(), st.sampled_from(engine.EVENTS), st.booleans()), max_size=6)
INSTANTS = st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(9999, 12, 31), timezones=st.just(UTC))
ZONES = st.sampled_from([tzinfo_of(0), tzinfo_of(5.5), zoneinfo.ZoneInfo("Europe/Prague")])


def compiled_triggers(items):
    out = []
    for k, (conditions, constraints, active, only_once, event, usable) in enumerate(items):
        stored = {"id": str(k + 1), "name": f"t{k} \"{k}\"", "active": active, "event": event, "only_once": only_once,
                  "constraints": constraints,
                  "conditions": [{"name": n, "cmp": c, "value": v} for n, c, v in conditions]}
        try:
            out.append(engine.compile_trigger(stored) if usable
                       else engine.unusable(stored, "conditions: cannot be evaluated (x)"))
        except ValueError:  # the catalogue refuses it (a value out of range): not a trigger that can be stored
            continue
    return out


@pytest.mark.skipif(not plan.COMPILED, reason="the engine is not compiled here: nothing to compare")
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(TRIGGERS, st.sampled_from(engine.EVENTS), VISITORS, INSTANTS, ZONES)
def test_compiled_and_python_write_the_same_bytes(items, event, visitor, at, tz):
    triggers = compiled_triggers(items)
    ctx = engine.context(event, visitor, at, tz)
    compiled = plan.Plan(triggers, engine.EVENTS).run(ctx)
    assert compiled == AS_PYTHON.Plan(triggers, engine.EVENTS).run(ctx)
    decisions = orjson.loads(compiled)
    assert [d["id"] for d in decisions] == [t.id for t in triggers]
    assert all(len(d["reasons"]) == len(t.conditions) for d, t in zip(decisions, triggers, strict=True))


def test_the_installed_engine_is_the_one_the_ci_expects():
    """COMPILED tells the truth: a compiled module is not the .py file (CI requires it compiled)."""
    assert plan.COMPILED is (Path(plan.__file__).suffix != ".py")
    assert AS_PYTHON.COMPILED is False


def test_clocks_beyond_the_bound_are_refused_before_the_engine():
    for clock in (-1, plan.MAX_CLOCK + 1):
        with pytest.raises(ValueError, match="seconds_on_site and seconds_on_page must be in 0.."):
            engine.context("onload", {"seconds_on_site": clock}, datetime.datetime(2026, 5, 4, tzinfo=UTC), UTC)
    ctx = engine.context("onload", {"seconds_on_site": plan.MAX_CLOCK}, datetime.datetime(2026, 5, 4, tzinfo=UTC), UTC)
    waits = engine.compile_trigger({"id": "1", "name": "t", "active": True, "event": "onload", "only_once": True,
                                   "constraints": "all",
                                   "conditions": [{"name": "delay_page", "value": plan.MAX_CLOCK}]})
    decision = orjson.loads(plan.Plan([waits], engine.EVENTS).run(ctx))[0]
    assert decision["after"] == plan.MAX_CLOCK - plan.MAX_CLOCK  # page defaults to the site clock: no wait
