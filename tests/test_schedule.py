"""The office-hours engine (opensupp.officehours.schedule): pure tables and properties.

Instants are written as ISO 8601 UTC strings and converted with the API's own parser.
Every document goes through ``validate_office_hours`` first, as the API's do.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opensupp.officehours import schedule
from opensupp.officehours.schedule import compile_schedule, is_open, open_intervals, status
from opensupp.officehours.validation import parse_instant, validate_office_hours
from opensupp.timeutil import iso

DAY = 86400


def t(text: str) -> int:
    value, message = parse_instant(text)
    assert message is None, message
    return value


def hours(**doc):
    normalized, errors = validate_office_hours({"active": True, **doc})
    assert errors == [], errors
    return compile_schedule(normalized)


def day(dow, *times):
    return {"dow": dow, "times": [{"from": a, "to": b} for a, b in times]}


def exception(date, *times):
    return {"date": date, "times": [{"from": a, "to": b} for a, b in times]}


def answer(hours_, at):
    state = status(hours_, t(at))
    return state.open, state.since and iso(state.since), state.next_change and iso(state.next_change)


def listing(hours_, start, end):
    return [(iso(a), iso(b)) for a, b in open_intervals(hours_, t(start), t(end))]


# The guide's example: Monday 08:00-11:45 and 13:00-17:00, Tuesday 08:00-11:45, Saturday
# and Sunday all day, UTC+1. 2026-12-21 is a Monday.
GUIDE = hours(days=[1, 2, 6, 0], timezone=1, config=[day(1, (480, 705), (780, 1020)), day(2, (480, 705))])


@pytest.mark.parametrize(
    "at, expected",
    [
        ("2026-12-20T22:59:59Z", (True, "2026-12-18T23:00:00Z", "2026-12-20T23:00:00Z")),  # Sat+Sun are one period
        ("2026-12-20T23:00:00Z", (False, "2026-12-20T23:00:00Z", "2026-12-21T07:00:00Z")),  # Monday 00:00 local
        ("2026-12-21T06:59:59Z", (False, "2026-12-20T23:00:00Z", "2026-12-21T07:00:00Z")),
        ("2026-12-21T07:00:00Z", (True, "2026-12-21T07:00:00Z", "2026-12-21T10:45:00Z")),  # from is open
        ("2026-12-21T10:44:59Z", (True, "2026-12-21T07:00:00Z", "2026-12-21T10:45:00Z")),
        ("2026-12-21T10:45:00Z", (False, "2026-12-21T10:45:00Z", "2026-12-21T12:00:00Z")),  # to is closed
        ("2026-12-21T12:00:00Z", (True, "2026-12-21T12:00:00Z", "2026-12-21T16:00:00Z")),
        ("2026-12-21T16:00:00Z", (False, "2026-12-21T16:00:00Z", "2026-12-22T07:00:00Z")),
        ("2026-12-22T10:45:00Z", (False, "2026-12-22T10:45:00Z", "2026-12-25T23:00:00Z")),  # Wed-Fri not in days
        ("2026-12-24T12:00:00Z", (False, "2026-12-22T10:45:00Z", "2026-12-25T23:00:00Z")),
        ("2026-12-26T12:00:00Z", (True, "2026-12-25T23:00:00Z", "2026-12-27T23:00:00Z")),
    ],
)
def test_guide_example_around_every_boundary(at, expected):
    assert answer(GUIDE, at) == expected


def test_guide_example_schedule_of_a_week():
    assert listing(GUIDE, "2026-12-20T23:00:00Z", "2026-12-27T23:00:00Z") == [
        ("2026-12-21T07:00:00Z", "2026-12-21T10:45:00Z"),
        ("2026-12-21T12:00:00Z", "2026-12-21T16:00:00Z"),
        ("2026-12-22T07:00:00Z", "2026-12-22T10:45:00Z"),
        ("2026-12-25T23:00:00Z", "2026-12-27T23:00:00Z"),  # Saturday and Sunday, one interval
    ]


def test_schedule_is_clipped_to_the_window():
    assert listing(GUIDE, "2026-12-21T08:00:00Z", "2026-12-21T13:00:00Z") == [
        ("2026-12-21T08:00:00Z", "2026-12-21T10:45:00Z"),
        ("2026-12-21T12:00:00Z", "2026-12-21T13:00:00Z"),
    ]
    assert listing(GUIDE, "2026-12-21T10:45:00Z", "2026-12-21T12:00:00Z") == []
    assert listing(GUIDE, "2026-12-21T12:00:00Z", "2026-12-21T12:00:00Z") == []


# ----------------------------------------------------------------------------- midnight joins

# Friday 20:00 to Saturday 02:00, and Sunday 22:00 to Monday 01:00 to 02:00 (touching).
OVERNIGHT = hours(
    days=[5, 6, 0, 1], timezone=0,
    config=[day(5, (1200, 1440)), day(6, (0, 120)), day(0, (1320, 1440)), day(1, (0, 60), (60, 120))],
)


@pytest.mark.parametrize(
    "at, expected",
    [
        ("2026-12-25T19:59:59Z", (False, "2026-12-21T02:00:00Z", "2026-12-25T20:00:00Z")),
        ("2026-12-25T20:00:00Z", (True, "2026-12-25T20:00:00Z", "2026-12-26T02:00:00Z")),
        ("2026-12-25T23:59:59Z", (True, "2026-12-25T20:00:00Z", "2026-12-26T02:00:00Z")),
        ("2026-12-26T00:00:00Z", (True, "2026-12-25T20:00:00Z", "2026-12-26T02:00:00Z")),  # through midnight
        ("2026-12-26T02:00:00Z", (False, "2026-12-26T02:00:00Z", "2026-12-27T22:00:00Z")),
        ("2026-12-28T00:59:59Z", (True, "2026-12-27T22:00:00Z", "2026-12-28T02:00:00Z")),  # 1440/0 and 60/60
    ],
)
def test_overnight_shift_is_one_period(at, expected):
    assert answer(OVERNIGHT, at) == expected


def test_overnight_shift_is_listed_once():
    assert listing(OVERNIGHT, "2026-12-25T00:00:00Z", "2026-12-29T00:00:00Z") == [
        ("2026-12-25T20:00:00Z", "2026-12-26T02:00:00Z"),
        ("2026-12-27T22:00:00Z", "2026-12-28T02:00:00Z"),
    ]


def test_a_week_of_all_day_days_joins_into_one_period():
    seven = hours(days=[0, 1, 2, 3, 4, 5, 6], timezone=0, config=[day(3, (0, 1440))])
    assert answer(seven, "2026-12-24T12:00:00Z") == (True, None, None)
    assert listing(seven, "2026-12-21T00:00:00Z", "2026-12-28T00:00:00Z") == [
        ("2026-12-21T00:00:00Z", "2026-12-28T00:00:00Z")
    ]


# ----------------------------------------------------------------------------- constant documents


@pytest.mark.parametrize(
    "doc, expected",
    [
        ({"active": False}, (True, None, None)),
        ({"active": False, "days": [1], "config": [day(1, (600, 700))]}, (True, None, None)),  # inactive: always open
        ({"days": []}, (False, None, None)),  # never open
        ({"days": [0, 1, 2, 3, 4, 5, 6]}, (True, None, None)),  # always open
        ({"days": [0, 1, 2, 3, 4, 5, 6], "timezone": "America/New_York"}, (True, None, None)),
    ],
)
def test_documents_that_never_change(doc, expected):
    normalized, errors = validate_office_hours({"active": True, **doc})
    assert errors == []
    assert answer(compile_schedule(normalized), "2026-03-08T07:00:00Z") == expected


def test_inactive_lists_the_whole_window():
    normalized, _ = validate_office_hours({"active": False, "days": [1], "config": [day(1, (600, 700))]})
    assert listing(compile_schedule(normalized), "2026-12-21T00:00:00Z", "2026-12-22T00:00:00Z") == [
        ("2026-12-21T00:00:00Z", "2026-12-22T00:00:00Z")
    ]


def test_a_day_not_in_days_is_closed_and_one_without_config_is_open_all_day():
    week = hours(days=[3], timezone=0)
    assert answer(week, "2026-12-23T12:00:00Z") == (True, "2026-12-23T00:00:00Z", "2026-12-24T00:00:00Z")
    assert answer(week, "2026-12-24T00:00:00Z") == (False, "2026-12-24T00:00:00Z", "2026-12-30T00:00:00Z")


# ----------------------------------------------------------------------------- exceptions

# Open every day, all day, in Prague; Christmas Eve until 16:00, Christmas Day closed,
# and a Sunday (not in days) opened for a sale.
HOLIDAYS = hours(
    days=[1, 2, 3, 4, 5, 6], timezone="Europe/Prague",
    exceptions=[exception("2026-12-24", (0, 960)), exception("2026-12-25"), exception("2026-12-27", (600, 960))],
)


@pytest.mark.parametrize(
    "at, expected",
    [
        ("2026-12-23T12:00:00Z", (True, "2026-12-20T23:00:00Z", "2026-12-24T15:00:00Z")),
        ("2026-12-24T14:59:59Z", (True, "2026-12-20T23:00:00Z", "2026-12-24T15:00:00Z")),
        ("2026-12-24T15:00:00Z", (False, "2026-12-24T15:00:00Z", "2026-12-25T23:00:00Z")),  # closed over the 25th
        ("2026-12-25T12:00:00Z", (False, "2026-12-24T15:00:00Z", "2026-12-25T23:00:00Z")),
        ("2026-12-26T12:00:00Z", (True, "2026-12-25T23:00:00Z", "2026-12-26T23:00:00Z")),
        ("2026-12-27T09:00:00Z", (True, "2026-12-27T09:00:00Z", "2026-12-27T15:00:00Z")),  # the Sunday exception
        ("2026-12-27T15:00:00Z", (False, "2026-12-27T15:00:00Z", "2026-12-27T23:00:00Z")),
    ],
)
def test_exceptions_replace_the_day(at, expected):
    assert answer(HOLIDAYS, at) == expected


def test_exceptions_on_an_all_week_schedule_are_found_however_far():
    always = hours(days=[0, 1, 2, 3, 4, 5, 6], timezone=0,
                   exceptions=[exception("2031-06-01"), exception("2020-02-29", (0, 60))])
    assert answer(always, "2026-01-01T00:00:00Z") == (True, "2020-03-01T00:00:00Z", "2031-06-01T00:00:00Z")
    # one period with all before it
    assert answer(always, "2020-02-29T00:59:59Z") == (True, None, "2020-02-29T01:00:00Z")
    assert answer(always, "2031-06-01T12:00:00Z") == (False, "2031-06-01T00:00:00Z", "2031-06-02T00:00:00Z")
    assert answer(always, "2031-06-02T00:00:00Z") == (True, "2031-06-02T00:00:00Z", None)
    never = hours(days=[], timezone=0, exceptions=[exception("2040-01-01", (0, 1440))])
    assert answer(never, "2026-01-01T00:00:00Z") == (False, None, "2040-01-01T00:00:00Z")


def test_an_exception_that_matches_the_regular_day_changes_nothing():
    same = hours(days=[0, 1, 2, 3, 4, 5, 6], timezone=0, exceptions=[exception("2026-12-24", (0, 1440))])
    assert answer(same, "2026-12-24T12:00:00Z") == (True, None, None)


def test_the_search_finds_a_change_hidden_by_366_exceptions():
    # Open on Mondays only, and the next 366 Mondays are closed: the change is 7 years away
    # (the last closed Monday is 2033-01-03).
    mondays = [(dt.date(2026, 1, 5) + dt.timedelta(weeks=i)).isoformat() for i in range(366)]
    monday = hours(days=[1], timezone=0, config=[day(1, (540, 1020))], exceptions=[exception(d) for d in mondays])
    assert answer(monday, "2026-01-01T00:00:00Z") == (False, "2025-12-29T17:00:00Z", "2033-01-10T09:00:00Z")


def test_the_search_is_bounded(monkeypatch):
    monday = hours(days=[1], timezone=0, config=[day(1, (540, 1020))])
    monkeypatch.setattr(schedule, "MAX_SCAN_DAYS", 3)
    assert answer(monday, "2026-12-23T00:00:00Z") == (False, None, None)  # gave up: not found within 3 days
    assert answer(monday, "2026-12-20T00:00:00Z") == (False, None, "2026-12-21T09:00:00Z")


@pytest.mark.parametrize("zone", [14, -12, "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Prague"])
@pytest.mark.parametrize("at", ["1970-01-01T00:00:00+23:59", "9998-12-31T23:59:59-23:59"])
def test_the_ends_of_the_allowed_range(zone, at):
    monday = hours(days=[1], timezone=zone, config=[day(1, (540, 1020))],
                   exceptions=[exception("9998-12-31"), exception("1970-01-01")])
    state = status(monday, t(at))
    assert state.since is not None and state.next_change is not None
    assert len(open_intervals(monday, t(at), t(at) + 31 * DAY)) in (4, 5)
    always = hours(days=list(range(7)), timezone=zone, exceptions=[exception("9998-12-31"), exception("1970-01-01")])
    first, last = (schedule.day_start(always, dt.date.fromisoformat(d).toordinal())
                   for d in ("1970-01-01", "9999-01-01"))
    expected = schedule.Status(True, None, first) if at < "5" else schedule.Status(True, last, None)
    assert status(always, t(at)) == expected


# ----------------------------------------------------------------------------- offsets


@pytest.mark.parametrize(
    "timezone, at, expected",
    [
        (5.5, "2026-12-21T03:29:59Z", (False, "2026-12-14T11:30:00Z", "2026-12-21T03:30:00Z")),
        (5.5, "2026-12-21T03:30:00Z", (True, "2026-12-21T03:30:00Z", "2026-12-21T11:30:00Z")),
        (5.5, "2026-12-21T11:30:00Z", (False, "2026-12-21T11:30:00Z", "2026-12-28T03:30:00Z")),
        (-3.5, "2026-12-21T12:29:59Z", (False, "2026-12-14T20:30:00Z", "2026-12-21T12:30:00Z")),
        (-3.5, "2026-12-21T20:29:59Z", (True, "2026-12-21T12:30:00Z", "2026-12-21T20:30:00Z")),
        (14, "2026-12-20T19:00:00Z", (True, "2026-12-20T19:00:00Z", "2026-12-21T03:00:00Z")),  # Monday there
        (-12, "2026-12-21T21:00:00Z", (True, "2026-12-21T21:00:00Z", "2026-12-22T05:00:00Z")),
    ],
)
def test_fixed_offsets(timezone, at, expected):
    monday = hours(days=[1], timezone=timezone, config=[day(1, (540, 1020))])
    assert answer(monday, at) == expected


def test_a_midnight_join_in_a_half_hour_zone():
    night = hours(days=[0, 1], timezone=5.5, config=[day(0, (1380, 1440)), day(1, (0, 30))])
    assert listing(night, "2026-12-20T00:00:00Z", "2026-12-22T00:00:00Z") == [
        ("2026-12-20T17:30:00Z", "2026-12-20T19:00:00Z")
    ]


# ----------------------------------------------------------------------------- daylight saving


@pytest.mark.parametrize(
    "zone, date, minute, expected",
    [
        # Prague, spring: 02:00 CET -> 03:00 CEST at 01:00Z; 02:00..02:59 do not exist.
        ("Europe/Prague", "2026-03-29", 119, "2026-03-29T00:59:00Z"),
        ("Europe/Prague", "2026-03-29", 120, "2026-03-29T01:00:00Z"),  # in the gap: when the clocks jump
        ("Europe/Prague", "2026-03-29", 150, "2026-03-29T01:00:00Z"),
        ("Europe/Prague", "2026-03-29", 180, "2026-03-29T01:00:00Z"),
        ("Europe/Prague", "2026-03-29", 181, "2026-03-29T01:01:00Z"),
        ("Europe/Prague", "2026-03-29", 1440, "2026-03-29T22:00:00Z"),  # a 23-hour day
        # Prague, autumn: 03:00 CEST -> 02:00 CET at 01:00Z; 02:00..02:59 happen twice.
        ("Europe/Prague", "2026-10-25", 119, "2026-10-24T23:59:00Z"),
        ("Europe/Prague", "2026-10-25", 120, "2026-10-25T00:00:00Z"),  # the first 02:00 (CEST)
        ("Europe/Prague", "2026-10-25", 179, "2026-10-25T00:59:00Z"),
        ("Europe/Prague", "2026-10-25", 180, "2026-10-25T02:00:00Z"),  # 03:00 CET
        ("Europe/Prague", "2026-10-25", 1440, "2026-10-25T23:00:00Z"),  # a 25-hour day
        # New York, spring: 02:00 EST -> 03:00 EDT at 07:00Z.
        ("America/New_York", "2026-03-08", 119, "2026-03-08T06:59:00Z"),
        ("America/New_York", "2026-03-08", 120, "2026-03-08T07:00:00Z"),
        ("America/New_York", "2026-03-08", 179, "2026-03-08T07:00:00Z"),
        ("America/New_York", "2026-03-08", 180, "2026-03-08T07:00:00Z"),
        # New York, autumn: 02:00 EDT -> 01:00 EST at 06:00Z; 01:00..01:59 happen twice.
        ("America/New_York", "2026-11-01", 59, "2026-11-01T04:59:00Z"),
        ("America/New_York", "2026-11-01", 60, "2026-11-01T05:00:00Z"),  # the first 01:00 (EDT)
        ("America/New_York", "2026-11-01", 119, "2026-11-01T05:59:00Z"),
        ("America/New_York", "2026-11-01", 120, "2026-11-01T07:00:00Z"),  # 02:00 EST
        # Lord Howe moves by half an hour: 02:00 -> 02:30 on 2026-10-04.
        ("Australia/Lord_Howe", "2026-10-04", 135, "2026-10-03T15:30:00Z"),
    ],
)
def test_local_minutes_on_the_nights_the_clocks_change(zone, date, minute, expected):
    ordinal = dt.date.fromisoformat(date).toordinal()
    assert iso(schedule.instant(schedule.tzinfo_of(zone), ordinal, minute)) == expected


def sunday(zone, *times, saturday=()):
    days = [6, 0] if saturday else [0]
    config = [day(0, *times)] + ([day(6, *saturday)] if saturday else [])
    return hours(days=days, timezone=zone, config=config)


@pytest.mark.parametrize(
    "hours_, window, expected",
    [
        # Prague spring forward, Sunday 2026-03-29
        (sunday("Europe/Prague", (120, 180)), "2026-03-29", []),  # wholly in the gap: no time at all
        (sunday("Europe/Prague", (60, 150)), "2026-03-29", [("2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z")]),
        (sunday("Europe/Prague", (150, 240)), "2026-03-29", [("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z")]),
        (sunday("Europe/Prague", (60, 120), (180, 240)), "2026-03-29",  # the gap closes between them
         [("2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z")]),
        (sunday("Europe/Prague", (0, 1440)), "2026-03-29", [("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z")]),
        (sunday("Europe/Prague", (0, 180), saturday=[(1200, 1440)]), "2026-03-28",
         [("2026-03-28T19:00:00Z", "2026-03-29T01:00:00Z")]),
        # Prague fall back, Sunday 2026-10-25
        (sunday("Europe/Prague", (120, 150)), "2026-10-25", [("2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z")]),
        (sunday("Europe/Prague", (60, 180)), "2026-10-25", [("2026-10-24T23:00:00Z", "2026-10-25T02:00:00Z")]),
        (sunday("Europe/Prague", (150, 180)), "2026-10-25", [("2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z")]),
        (sunday("Europe/Prague", (180, 240)), "2026-10-25", [("2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z")]),
        (sunday("Europe/Prague", (0, 1440)), "2026-10-25", [("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")]),
        # New York spring forward, Sunday 2026-03-08
        (sunday("America/New_York", (120, 180)), "2026-03-08", []),
        (sunday("America/New_York", (90, 150)), "2026-03-08", [("2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z")]),
        (sunday("America/New_York", (0, 150), saturday=[(1320, 1440)]), "2026-03-07",
         [("2026-03-08T03:00:00Z", "2026-03-08T07:00:00Z")]),
        # New York fall back, Sunday 2026-11-01
        (sunday("America/New_York", (60, 90)), "2026-11-01", [("2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z")]),
        (sunday("America/New_York", (0, 120)), "2026-11-01", [("2026-11-01T04:00:00Z", "2026-11-01T07:00:00Z")]),
        (sunday("America/New_York", (90, 120)), "2026-11-01", [("2026-11-01T05:30:00Z", "2026-11-01T07:00:00Z")]),
    ],
)
def test_intervals_on_the_nights_the_clocks_change(hours_, window, expected):
    start = schedule.day_start(hours_, dt.date.fromisoformat(window).toordinal())
    assert [(iso(a), iso(b)) for a, b in open_intervals(hours_, start, start + 2 * DAY)] == expected


@pytest.mark.parametrize(
    "hours_, at, expected",
    [
        (sunday("Europe/Prague", (60, 150)), "2026-03-29T00:59:59Z",
         (True, "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z")),
        (sunday("Europe/Prague", (60, 150)), "2026-03-29T01:00:00Z",
         (False, "2026-03-29T01:00:00Z", "2026-04-04T23:00:00Z")),
        # a gap-swallowed interval: the state before it goes on to the next Sunday
        (sunday("Europe/Prague", (120, 180)), "2026-03-29T01:00:00Z",
         (False, "2026-03-22T02:00:00Z", "2026-04-05T00:00:00Z")),
        (sunday("Europe/Prague", (60, 180)), "2026-10-25T01:30:00Z",
         (True, "2026-10-24T23:00:00Z", "2026-10-25T02:00:00Z")),
        (sunday("America/New_York", (0, 120)), "2026-11-01T06:30:00Z",
         (True, "2026-11-01T04:00:00Z", "2026-11-01T07:00:00Z")),
        (sunday("America/New_York", (90, 150)), "2026-03-08T07:00:00Z",
         (False, "2026-03-08T07:00:00Z", "2026-03-15T05:30:00Z")),
    ],
)
def test_status_on_the_nights_the_clocks_change(hours_, at, expected):
    assert answer(hours_, at) == expected


def test_a_date_starts_at_its_local_midnight():
    prague = hours(days=[0], timezone="Europe/Prague")
    assert iso(schedule.day_start(prague, dt.date(2026, 3, 29).toordinal())) == "2026-03-28T23:00:00Z"
    assert iso(schedule.day_start(prague, dt.date(2026, 3, 30).toordinal())) == "2026-03-29T22:00:00Z"
    assert schedule.local_day(prague, t("2026-03-28T23:00:00Z")) == dt.date(2026, 3, 29).toordinal()
    assert schedule.local_day(prague, t("2026-03-28T22:59:59Z")) == dt.date(2026, 3, 28).toordinal()


# ----------------------------------------------------------------------------- properties

ZONES = [0, 1, 5.5, -3.5, 5.75, 14, -12, "Europe/Prague", "America/New_York", "Australia/Lord_Howe", "UTC"]
# Minutes around the nights the clocks change, midnight and the ends of the day, and any.
MINUTES = st.one_of(st.sampled_from([0, 60, 90, 120, 150, 180, 240, 1380, 1440]), st.integers(0, 1440))
FIRST = dt.date(2026, 2, 20)  # instants and exceptions lie in FIRST + 0..SPAN days
SPAN = 300
# The clocks change inside the span: Prague and New York in March, October and November.
CHANGES = [t(s) for s in ("2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z", "2026-03-08T07:00:00Z",
                          "2026-11-01T06:00:00Z", "2026-10-03T15:30:00Z")]


@st.composite
def times(draw, *, empty_ok=False):
    points = sorted(set(draw(st.lists(MINUTES, max_size=8))))
    if len(points) < 2:
        return [] if empty_ok else [{"from": 0, "to": 1440}]
    step = draw(st.sampled_from([1, 2]))  # 1: every interval touches the next; 2: gaps between them
    return [{"from": points[i], "to": points[i + 1]} for i in range(0, len(points) - 1, step)]


@st.composite
def documents(draw):
    days = draw(st.lists(st.integers(0, 6), unique=True, max_size=7))
    configured = draw(st.lists(st.sampled_from(days), unique=True)) if days else []
    dates = draw(st.lists(st.integers(0, SPAN), unique=True, max_size=6))
    return {
        "active": draw(st.integers(0, 9)) > 0,
        "days": days,
        "timezone": draw(st.sampled_from(ZONES)),
        "config": [{"dow": d, "times": draw(times())} for d in configured],
        "exceptions": [{"date": (FIRST + dt.timedelta(days=n)).isoformat(), "times": draw(times(empty_ok=True))}
                       for n in dates],
    }


def instants():
    start = t(f"{FIRST}T00:00:00Z")
    near_a_change = st.tuples(st.sampled_from(CHANGES), st.integers(-2 * DAY, 2 * DAY)).map(sum)
    return st.one_of(st.integers(start, start + SPAN * DAY), near_a_change)


def compiled(doc):
    normalized, errors = validate_office_hours(doc)
    assert errors == [], errors
    return compile_schedule(normalized)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def between(a: int, b: int, fraction: st.DataObject) -> list[int]:
    """A few points of [a, b): its ends and some inside."""
    inside = [fraction.draw(st.integers(a, b - 1)) for _ in range(3)] if b - a > 1 else []
    return [a, b - 1, (a + b) // 2, *inside]


@given(doc=documents(), at=instants(), data=st.data())
@PROPERTY
def test_next_change_is_the_first_flip(doc, at, data):
    hours_ = compiled(doc)
    state = is_open(hours_, at)
    change = schedule.next_change(hours_, at)
    if change is None:
        later = [at + data.draw(st.integers(1, 400 * DAY)) for _ in range(4)]
        assert all(is_open(hours_, p) == state for p in later)
        return
    assert change > at
    assert is_open(hours_, change) != state
    assert all(is_open(hours_, p) == state for p in between(at, change, data))


@given(doc=documents(), at=instants(), data=st.data())
@PROPERTY
def test_since_is_when_the_state_began(doc, at, data):
    hours_ = compiled(doc)
    state = is_open(hours_, at)
    began = schedule.since(hours_, at)
    if began is None:
        earlier = [at - data.draw(st.integers(1, 400 * DAY)) for _ in range(4)]
        assert all(is_open(hours_, p) == state for p in earlier)
        return
    assert began <= at
    assert is_open(hours_, began) == state
    assert is_open(hours_, began - 1) != state
    assert all(is_open(hours_, p) == state for p in between(began, at + 1, data))


@given(doc=documents(), at=instants(), days=st.integers(1, 31), data=st.data())
@settings(PROPERTY, max_examples=100)
def test_the_schedule_agrees_with_is_open(doc, at, days, data):
    hours_ = compiled(doc)
    end = at + days * DAY
    intervals = open_intervals(hours_, at, end)
    for (a, b), (c, _) in itertools.pairwise(intervals):
        assert a < b < c  # sorted, disjoint, never touching
    for a, b in intervals:
        assert at <= a < b <= end
        assert all(is_open(hours_, p) for p in between(a, b, data))
        assert a == at or not is_open(hours_, a - 1)
        assert b == end or not is_open(hours_, b)
    points = [data.draw(st.integers(at, end - 1)) for _ in range(8)]
    for p in points:
        assert is_open(hours_, p) == any(a <= p < b for a, b in intervals)


@given(doc=documents(), at=instants())
@PROPERTY
def test_status_is_its_three_parts(doc, at):
    hours_ = compiled(doc)
    assert status(hours_, at) == schedule.Status(
        is_open(hours_, at), schedule.since(hours_, at), schedule.next_change(hours_, at)
    )
