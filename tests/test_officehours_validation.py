"""Office-hours validation (opensupp.officehours.validation): pure tables, no app, no database."""

from __future__ import annotations

import copy
import datetime

import pytest

from opensupp.errors import FieldError
from opensupp.officehours.validation import (
    DEFAULT,
    check_date,
    check_timezone,
    merge,
    parse_days,
    parse_instant,
    parse_start,
    validate_office_hours,
)

GUIDE = {
    "active": True,
    "days": [1, 2, 6, 0],
    "timezone": 1,
    "config": [
        {"dow": 1, "times": [{"from": 480, "to": 705}, {"from": 780, "to": 1020}]},
        {"dow": 2, "times": [{"from": 480, "to": 705}]},
    ],
}


def doc(**changes):
    out = copy.deepcopy(GUIDE)
    out.update(changes)
    return out


def day(dow, *times):
    return {"dow": dow, "times": [{"from": a, "to": b} for a, b in times]}


def fields(errors: list[FieldError]) -> list[str]:
    return [e.field for e in errors]


def ok(value):
    normalized, errors = validate_office_hours(value)
    assert errors == [], errors
    return normalized


def only_error(value) -> FieldError:
    _, errors = validate_office_hours(value)
    assert len(errors) == 1, errors
    return errors[0]


# ----------------------------------------------------------------------------- valid documents


def test_guide_example_validates_and_normalizes_to_itself_exactly():
    normalized = ok(copy.deepcopy(GUIDE))
    assert normalized == GUIDE
    assert list(normalized) == ["active", "days", "timezone", "config"]
    assert type(normalized["timezone"]) is int
    assert normalized is not GUIDE


def test_default_is_valid_and_unchanged():
    assert DEFAULT == {"active": False, "days": [], "timezone": 0, "config": []}
    assert ok(copy.deepcopy(DEFAULT)) == DEFAULT


def test_missing_keys_take_the_default():
    assert ok({}) == DEFAULT
    assert ok({"active": True}) == {**DEFAULT, "active": True}


def test_validation_does_not_modify_its_input():
    value = doc(days=["1", "2", "6", "0"], active="true")
    before = copy.deepcopy(value)
    validate_office_hours(value)
    assert value == before


def test_days_keep_the_order_sent():
    assert ok(doc(days=[6, 0, 2, 1]))["days"] == [6, 0, 2, 1]


def test_a_day_in_days_without_config_is_fine():
    assert ok(doc(days=[0, 1, 2, 3, 4, 5, 6]))["days"] == [0, 1, 2, 3, 4, 5, 6]


def test_touching_intervals_and_full_day_bounds_are_fine():
    ok(doc(config=[day(1, (0, 705), (705, 1440))]))
    ok(doc(config=[day(1, (0, 1440))]))


def test_48_intervals_and_7_entries_are_the_maximum():
    times = [(i * 30, i * 30 + 30) for i in range(48)]
    ok(doc(days=list(range(7)), config=[day(d, *times) for d in range(7)]))


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"active": "true"}, {"active": True}),
        ({"active": "false"}, {"active": False}),
        ({"active": "1"}, {"active": True}),
        ({"active": "0"}, {"active": False}),
        ({"days": ["1", "2", "0"]}, {"days": [1, 2, 0]}),
        ({"timezone": "1"}, {"timezone": 1}),
        ({"timezone": "5.5"}, {"timezone": 5.5}),
        ({"timezone": "-3.75"}, {"timezone": -3.75}),
        ({"config": [{"dow": "1", "times": [{"from": "480", "to": "705"}]}]}, {"config": [day(1, (480, 705))]}),
    ],
)
def test_decimal_strings_and_boolean_strings_are_coerced(value, expected):
    normalized = ok(doc(**value))
    for key, want in expected.items():
        assert normalized[key] == want
        assert type(normalized[key]) is type(want)
    if "days" in expected:
        assert all(type(d) is int for d in normalized["days"])
    if "config" in expected:
        interval = normalized["config"][0]["times"][0]
        assert type(normalized["config"][0]["dow"]) is int
        assert type(interval["from"]) is int and type(interval["to"]) is int


def test_normalized_keys_are_in_a_fixed_order():
    normalized = ok(doc(config=[{"times": [{"to": 705, "from": 480}], "dow": 1}]))
    assert list(normalized["config"][0]) == ["dow", "times"]
    assert list(normalized["config"][0]["times"][0]) == ["from", "to"]


# ----------------------------------------------------------------------------- timezone


@pytest.mark.parametrize(
    "tz",
    [0, 1, -5, 14, -12, 5.5, -3.75, 5.75, 12.25, -0.25, 1.0, 0.0],
)
def test_numeric_timezones_are_answered_exactly_as_sent(tz):
    normalized = ok(doc(timezone=tz))
    assert normalized["timezone"] == tz
    assert type(normalized["timezone"]) is type(tz)


@pytest.mark.parametrize(
    "tz, expected",
    [("1", 1), ("-5", -5), ("5.5", 5.5), ("-3.75", -3.75), ("14", 14), ("-12", -12), ("5.50", 5.5), ("1.0", 1.0)],
)
def test_numeric_string_timezones_become_numbers(tz, expected):
    normalized = ok(doc(timezone=tz))
    assert normalized["timezone"] == expected
    assert type(normalized["timezone"]) is type(expected)


@pytest.mark.parametrize(
    "tz",
    [
        "UTC",
        "Europe/Prague",
        "America/New_York",  # daylight saving
        "Australia/Lord_Howe",  # half-hour daylight saving
        "Asia/Kolkata",
        "Asia/Kathmandu",
        "Pacific/Chatham",
        "America/Sao_Paulo",
        "Etc/GMT+5",
    ],
)
def test_iana_timezones_are_kept_as_names(tz):
    assert ok(doc(timezone=tz))["timezone"] == tz


@pytest.mark.parametrize(
    "tz, message_part",
    [
        (5.3, "quarter hours"),
        ("5.3", "quarter hours"),
        (0.1, "quarter hours"),
        (15, "from -12 to 14"),
        (-13, "from -12 to 14"),
        (14.25, "from -12 to 14"),
        (-12.25, "from -12 to 14"),
        ("15", "from -12 to 14"),
        (float("inf"), "from -12 to 14"),
        (float("nan"), "from -12 to 14"),
        (True, "IANA"),
        (False, "IANA"),
        (None, "IANA"),
        ([1], "IANA"),
        ({"offset": 1}, "IANA"),
        ("", "IANA"),
        ("+1", "IANA"),
        ("1e1", "IANA"),
        (" 1", "IANA"),
        ("GMT+1", "IANA"),
        ("Europe/Atlantis", "IANA"),
        ("Mars/Olympus_Mons", "IANA"),
        ("../../etc/passwd", "IANA"),
        ("/usr/share/zoneinfo/UTC", "IANA"),
        ("europe/prague", 'did you mean "Europe/Prague"'),
        ("utc", 'did you mean "UTC"'),
    ],
)
def test_bad_timezones_are_refused_at_timezone(tz, message_part):
    error = only_error(doc(timezone=tz))
    assert error.field == "timezone"
    assert message_part in error.message


def test_timezone_error_message_gives_examples():
    _, message = check_timezone("Nowhere/Special")
    assert "Europe/Prague" in message and "5.5" in message


# ----------------------------------------------------------------------------- shape errors


@pytest.mark.parametrize("value", [None, [], "x", 1, True])
def test_the_document_must_be_an_object(value):
    normalized, errors = validate_office_hours(value)
    assert errors == [FieldError("", "must be an object")]
    assert normalized == DEFAULT


def test_unknown_top_level_keys_are_named():
    _, errors = validate_office_hours(doc(activ=True, zone="UTC"))
    assert errors == [
        FieldError("activ", "is not a known field (allowed: active, days, timezone, config, exceptions)"),
        FieldError("zone", "is not a known field (allowed: active, days, timezone, config, exceptions)"),
    ]


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"active": None}, "active", "must be true or false"),
        ({"active": 1}, "active", "must be true or false"),
        ({"active": "yes"}, "active", "must be true or false"),
        ({"active": "True"}, "active", "must be true or false"),
        ({"days": None}, "days", "must be a list"),
        ({"days": "1,2"}, "days", "must be a list"),
        ({"days": {"0": 1}}, "days", "must be a list"),
        ({"days": [0, 1, 2, 3, 4, 5, 6, 0]}, "days", "must have at most 7 items"),
        ({"config": None}, "config", "must be a list"),
        ({"config": {"dow": 1}}, "config", "must be a list"),
    ],
)
def test_wrong_types_at_the_top(changes, field, message):
    changes.setdefault("config", [])
    error = only_error(doc(**changes))
    assert (error.field, error.message) == (field, message)


# ----------------------------------------------------------------------------- days


@pytest.mark.parametrize("bad", [7, -1, 1.0, 1.5, True, False, None, "Monday", "1.0", "", [1], {"d": 1}, " 1"])
def test_a_bad_day_is_named_by_index(bad):
    error = only_error(doc(days=[1, bad], config=[day(1, (480, 705))]))
    assert error == FieldError("days[1]", "must be an integer from 0 to 6 (0 is Sunday)")


def test_duplicate_days_are_an_error_at_the_later_one():
    error = only_error(doc(days=[1, 2, 6, 0, 2], config=[]))
    assert error.field == "days[4]"
    assert "day 2 is listed twice" in error.message
    assert "days[1]" in error.message


def test_a_duplicate_string_day_counts_as_the_same_day():
    assert only_error(doc(days=[1, "1"], config=[])).field == "days[1]"


# ----------------------------------------------------------------------------- config entries


@pytest.mark.parametrize(
    "config, field, message",
    [
        ([None], "config[0]", "must be an object"),
        ([[1, [480, 705]]], "config[0]", "must be an object"),
        ([{"times": [{"from": 480, "to": 705}]}], "config[0].dow", "is required"),
        ([{"dow": 1}], "config[0].times", "is required"),
        ([{"dow": 1, "times": None}], "config[0].times", "must be a list"),
        ([{"dow": 1, "times": {"from": 480, "to": 705}}], "config[0].times", "must be a list"),
        ([day(1, (480, 705)), {"dow": 2, "times": [], "day": 2}], "config[1].day",
         "is not a known field (allowed: dow, times)"),
        ([day(1, (480, 705)), {"dow": 7, "times": [{"from": 1, "to": 2}]}], "config[1].dow",
         "must be an integer from 0 to 6 (0 is Sunday)"),
        ([{"dow": True, "times": [{"from": 1, "to": 2}]}], "config[0].dow",
         "must be an integer from 0 to 6 (0 is Sunday)"),
        ([{"dow": 1.0, "times": [{"from": 1, "to": 2}]}], "config[0].dow",
         "must be an integer from 0 to 6 (0 is Sunday)"),
        ([day(3, (480, 705))], "config[0].dow", "dow 3 is not in days"),
        ([day(1, (480, 705)), day(2, (480, 705)), day(1, (780, 900))], "config[2].dow",
         "dow 1 already has an entry (config[0])"),
    ],
)
def test_config_entry_errors(config, field, message):
    _, errors = validate_office_hours(doc(config=config))
    assert FieldError(field, message) in errors, errors


def test_an_entry_needs_at_least_one_interval():
    error = only_error(doc(config=[{"dow": 1, "times": []}]))
    assert error.field == "config[0].times"
    assert "at least one interval" in error.message


def test_more_than_seven_entries():
    config = [day(d % 7, (480, 705)) for d in range(8)]
    error = only_error(doc(days=list(range(7)), config=config))
    assert error == FieldError("config", "must have at most 7 items (one per day)")


def test_more_than_48_intervals():
    times = [(i * 20, i * 20 + 10) for i in range(49)]
    error = only_error(doc(config=[day(1, *times)]))
    assert error == FieldError("config[0].times", "must have at most 48 items")


def test_a_string_dow_is_checked_against_days_as_a_number():
    assert ok(doc(config=[{"dow": "2", "times": [{"from": 1, "to": 2}]}]))["config"][0]["dow"] == 2
    assert only_error(doc(config=[{"dow": "3", "times": [{"from": 1, "to": 2}]}])) == FieldError(
        "config[0].dow", "dow 3 is not in days"
    )


def test_not_in_days_is_not_judged_when_days_itself_is_wrong():
    _, errors = validate_office_hours(doc(days=[1, 9], config=[day(2, (1, 2))]))
    assert fields(errors) == ["days[1]"]
    _, errors = validate_office_hours(doc(days="1", config=[day(2, (1, 2))]))
    assert fields(errors) == ["days"]


# ----------------------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    "interval, field, message",
    [
        (None, "config[0].times[0]", "must be an object"),
        ([480, 705], "config[0].times[0]", "must be an object"),
        ({"to": 705}, "config[0].times[0].from", "is required"),
        ({"from": 480}, "config[0].times[0].to", "is required"),
        ({"from": 480, "to": 705, "till": 1}, "config[0].times[0].till", "is not a known field (allowed: from, to)"),
        ({"from": -1, "to": 705}, "config[0].times[0].from", "must be an integer from 0 to 1440"),
        ({"from": 480, "to": 1441}, "config[0].times[0].to", "must be an integer from 0 to 1440"),
        ({"from": 480.0, "to": 705}, "config[0].times[0].from", "must be an integer from 0 to 1440"),
        ({"from": 480.5, "to": 705}, "config[0].times[0].from", "must be an integer from 0 to 1440"),
        ({"from": "480.0", "to": 705}, "config[0].times[0].from", "must be an integer from 0 to 1440"),
        ({"from": "8:00", "to": 705}, "config[0].times[0].from", "must be an integer from 0 to 1440"),
        ({"from": True, "to": 705}, "config[0].times[0].from", "must be an integer from 0 to 1440"),
        ({"from": None, "to": 705}, "config[0].times[0].from", "must be an integer from 0 to 1440"),
        ({"from": 480, "to": "1441"}, "config[0].times[0].to", "must be an integer from 0 to 1440"),
        ({"from": 705, "to": 480}, "config[0].times[0].to", "must be after from"),
        ({"from": 480, "to": 480}, "config[0].times[0].to", "must be after from"),
        ({"from": 1440, "to": 1440}, "config[0].times[0].to", "must be after from"),
    ],
)
def test_interval_errors(interval, field, message):
    error = only_error(doc(config=[{"dow": 1, "times": [interval]}]))
    assert error == FieldError(field, message)


def test_overlapping_intervals_are_an_error_at_the_later_from():
    error = only_error(doc(config=[day(1, (480, 705), (700, 1020))]))
    assert error == FieldError("config[0].times[1].from", "overlaps the previous interval (ends at 705)")


def test_an_interval_inside_an_earlier_long_one_is_caught():
    _, errors = validate_office_hours(doc(config=[day(1, (0, 1000), (100, 200), (300, 400))]))
    assert errors == [
        FieldError("config[0].times[1].from", "overlaps the previous interval (ends at 1000)"),
        FieldError("config[0].times[2].from", "overlaps config[0].times[0] (ends at 1000)"),
    ]


def test_unsorted_intervals_are_an_error_at_from():
    error = only_error(doc(config=[day(1, (780, 1020), (480, 705))]))
    assert error.field == "config[0].times[1].from"
    assert "sort the intervals by from" in error.message and "780" in error.message


def test_same_start_is_an_overlap():
    error = only_error(doc(config=[day(1, (480, 705), (480, 600))]))
    assert error == FieldError("config[0].times[1].from", "overlaps the previous interval (ends at 705)")


def test_intervals_on_different_days_may_overlap():
    ok(doc(config=[day(1, (480, 705)), day(2, (480, 705))]))


# ----------------------------------------------------------------------------- all at once


def test_every_problem_is_reported_at_once_with_exact_paths():
    value = {
        "active": "maybe",
        "days": [1, 1, 8],
        "timezone": 5.3,
        "config": [
            {"dow": 1, "times": [{"from": 480, "to": 705}, {"from": 700, "to": 1500}]},
            {"dow": 2, "times": [{"from": 900, "to": 800}, {"to": 5}], "x": 1},
        ],
        "extra": 1,
    }
    _, errors = validate_office_hours(value)
    assert fields(errors) == [
        "extra",
        "active",
        "days[1]",
        "days[2]",
        "timezone",
        "config[0].times[1].to",
        "config[1].x",
        "config[1].times[0].to",
        "config[1].times[1].from",
    ]


# ----------------------------------------------------------------------------- merge


def test_merge_changes_only_the_keys_sent():
    stored = copy.deepcopy(GUIDE)
    merged = merge(stored, {"timezone": "Europe/Prague"})
    assert merged == {**GUIDE, "timezone": "Europe/Prague"}
    assert stored == GUIDE


def test_merge_replaces_config_as_a_whole():
    merged = merge(copy.deepcopy(GUIDE), {"config": [day(6, (600, 720))]})
    assert merged["config"] == [day(6, (600, 720))]
    assert merged["days"] == GUIDE["days"]


def test_merge_of_nothing_is_the_stored_document():
    assert merge(copy.deepcopy(GUIDE), {}) == GUIDE


def test_merge_onto_the_default():
    assert merge(DEFAULT, {"active": True}) == {**DEFAULT, "active": True}
    assert DEFAULT == {"active": False, "days": [], "timezone": 0, "config": []}


def test_merge_does_not_share_lists_with_its_inputs():
    patch = {"days": [1]}
    merged = merge(DEFAULT, patch)
    merged["days"].append(2)
    merged["config"].append(1)
    assert patch == {"days": [1]} and DEFAULT["config"] == []


def test_merge_keeps_unknown_keys_for_validation_to_name():
    merged = merge(DEFAULT, {"tz": 1})
    assert only_error(merged).field == "tz"


def test_merge_then_validate_a_partial_update():
    merged = merge(copy.deepcopy(GUIDE), {"days": [1, 6, 0]})
    error = only_error(merged)
    assert error == FieldError("config[1].dow", "dow 2 is not in days")



# ----------------------------------------------------------------------------- exceptions


def closed(date):
    return {"date": date, "times": []}


def special(date, *times):
    return {"date": date, "times": [{"from": a, "to": b} for a, b in times]}


def test_exceptions_are_kept_in_the_order_sent_after_config():
    exceptions = [special("2026-12-24", (0, 960)), closed("2026-12-25"), special("2027-01-03", (600, 700), (700, 800))]
    normalized = ok(doc(exceptions=exceptions))
    assert normalized == {**GUIDE, "exceptions": exceptions}
    assert list(normalized) == ["active", "days", "timezone", "config", "exceptions"]


def test_no_exceptions_leaves_the_key_out():
    assert "exceptions" not in ok(doc())
    assert "exceptions" not in ok(doc(exceptions=[]))
    assert ok(doc(exceptions=[])) == GUIDE


def test_an_exception_may_be_for_any_weekday_and_may_be_all_day_or_closed():
    ok(doc(days=[], config=[], exceptions=[special("2026-12-23", (0, 1440)), closed("2026-12-21")]))


def test_exception_numbers_may_be_strings():
    normalized = ok(doc(exceptions=[{"date": "2026-12-24", "times": [{"from": "0", "to": "960"}]}]))
    interval = normalized["exceptions"][0]["times"][0]
    assert interval == {"from": 0, "to": 960} and type(interval["from"]) is int


def test_366_exceptions_and_48_intervals_are_the_maximum():
    first = datetime.date(2026, 1, 1)
    dates = [(first + datetime.timedelta(days=i)).isoformat() for i in range(366)]
    full_days = [special(d, *[(i * 30, i * 30 + 30) for i in range(48)]) for d in dates[:2]]
    ok(doc(exceptions=full_days + [closed(d) for d in dates[2:]]))
    error = only_error(doc(exceptions=[closed(d) for d in dates] + [closed("2028-01-01")]))
    assert error == FieldError("exceptions", "must have at most 366 items (one per date)")
    error = only_error(doc(exceptions=[special("2026-12-24", *[(i * 20, i * 20 + 10) for i in range(49)])]))
    assert error == FieldError("exceptions[0].times", "must have at most 48 items")


DATE_MESSAGE = 'must be a date written YYYY-MM-DD (like "2026-12-24"), from 1970-01-01 to 9998-12-31'


@pytest.mark.parametrize(
    "exceptions, field, message",
    [
        (None, "exceptions", "must be a list"),
        ({"2026-12-24": []}, "exceptions", "must be a list"),
        ([None], "exceptions[0]", "must be an object"),
        (["2026-12-24"], "exceptions[0]", "must be an object"),
        ([{"times": []}], "exceptions[0].date", "is required"),
        ([{"date": "2026-12-24"}], "exceptions[0].times", "is required (an empty list closes the day)"),
        ([{"date": "2026-12-24", "times": [], "open": False}], "exceptions[0].open",
         "is not a known field (allowed: date, times)"),
        ([{"date": "2026-12-24", "times": None}], "exceptions[0].times", "must be a list"),
        ([closed("2026-12-24"), closed("2026-12-24")], "exceptions[1].date",
         "date 2026-12-24 already has an entry (exceptions[0])"),
        ([closed("2026-02-29")], "exceptions[0].date", "2026-02-29 is not a date of the calendar"),
        ([closed("2026-13-01")], "exceptions[0].date", "2026-13-01 is not a date of the calendar"),
        ([closed("2026-04-31")], "exceptions[0].date", "2026-04-31 is not a date of the calendar"),
        ([closed("1969-12-31")], "exceptions[0].date", "must be from 1970-01-01 to 9998-12-31"),
        ([closed("9999-01-01")], "exceptions[0].date", "must be from 1970-01-01 to 9998-12-31"),
        ([closed("2026-1-5")], "exceptions[0].date", DATE_MESSAGE),
        ([closed("24.12.2026")], "exceptions[0].date", DATE_MESSAGE),
        ([closed("2026-12-24T00:00:00Z")], "exceptions[0].date", DATE_MESSAGE),
        ([closed(" 2026-12-24")], "exceptions[0].date", DATE_MESSAGE),
        ([closed("２０２６-12-24")], "exceptions[0].date", DATE_MESSAGE),  # full-width digits
        ([closed(20261224)], "exceptions[0].date", DATE_MESSAGE),
        ([closed(None)], "exceptions[0].date", DATE_MESSAGE),
        ([special("2026-12-24", (960, 0))], "exceptions[0].times[0].to", "must be after from"),
        ([closed("2026-12-23"), special("2026-12-24", (0, 1441))], "exceptions[1].times[0].to",
         "must be an integer from 0 to 1440"),
        ([special("2026-12-24", (0, 600), (500, 700))], "exceptions[0].times[1].from",
         "overlaps the previous interval (ends at 600)"),
        ([{"date": "2026-12-24", "times": [{"from": 1}]}], "exceptions[0].times[0].to", "is required"),
        ([{"date": "2026-12-24", "times": [[0, 600]]}], "exceptions[0].times[0]", "must be an object"),
    ],
)
def test_exception_errors_name_the_exact_path(exceptions, field, message):
    _, errors = validate_office_hours(doc(exceptions=exceptions))
    assert errors == [FieldError(field, message)], errors


def test_every_exception_problem_is_reported_at_once():
    _, errors = validate_office_hours(doc(exceptions=[
        closed("2026-12-24"), {"date": "2026-12-24", "times": [{"from": 5, "to": 1}], "x": 1}, {"date": "x"},
    ]))
    assert fields(errors) == [
        "exceptions[1].x", "exceptions[1].date", "exceptions[1].times[0].to",
        "exceptions[2].date", "exceptions[2].times",
    ]


def test_merge_replaces_exceptions_as_a_whole_and_an_empty_list_removes_them():
    stored = ok(doc(exceptions=[closed("2026-12-24"), closed("2026-12-25")]))
    assert ok(merge(stored, {"exceptions": [closed("2026-12-31")]}))["exceptions"] == [closed("2026-12-31")]
    assert ok(merge(stored, {"days": [1, 2]}))["exceptions"] == stored["exceptions"]
    assert ok(merge(stored, {"exceptions": []})) == GUIDE


# ----------------------------------------------------------------------------- query parameters


def test_check_date():
    assert check_date("2026-12-24") == (datetime.date(2026, 12, 24), None)
    assert check_date("1970-01-01")[0] == datetime.date(1970, 1, 1)
    assert check_date("9998-12-31")[0] == datetime.date(9998, 12, 31)
    assert check_date("2028-02-29")[0] == datetime.date(2028, 2, 29)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-12-24T16:00:00Z", "2026-12-24T16:00:00Z"),
        ("2026-12-24T17:00:00+01:00", "2026-12-24T16:00:00Z"),
        ("2026-12-24T17:00:00 01:00", "2026-12-24T16:00:00Z"),  # a "+" the query string decoded
        ("2026-12-24T12:30:00-03:30", "2026-12-24T16:00:00Z"),
        ("2026-12-24t16:00:00z", "2026-12-24T16:00:00Z"),
        ("2026-12-24T16:00Z", "2026-12-24T16:00:00Z"),
        ("2026-12-24T16:00:00.999999Z", "2026-12-24T16:00:00Z"),  # a fraction is dropped
        ("2026-12-25T00:30:00+23:59", "2026-12-24T00:31:00Z"),
        ("1970-01-01T00:00:00+01:00", "1969-12-31T23:00:00Z"),  # the date as written counts
        ("9998-12-31T23:59:59-23:59", "9999-01-01T23:58:59Z"),
    ],
)
def test_parse_instant(text, expected):
    value, message = parse_instant(text)
    assert message is None
    assert datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") == expected


NO_OFFSET = "needs an offset: end it with Z (UTC) or like +01:00 (a time alone could be any instant)"
INSTANT = ('must be a date and time with an offset, like "2026-12-24T16:00:00Z" or "2026-12-24T17:00:00+01:00" '
           "(in a URL, write + as %2B)")


@pytest.mark.parametrize(
    "text, message",
    [
        ("2026-12-24T16:00:00", NO_OFFSET),
        ("2026-12-24T16:00", NO_OFFSET),
        ("2026-12-24", INSTANT),
        ("", INSTANT),
        ("now", INSTANT),
        ("1798128000", INSTANT),
        ("2026-12-24 16:00:00Z", INSTANT),
        ("2026-12-24T16:00:00+0100", INSTANT),
        ("2026-12-24T16:00:00+01", INSTANT),
        ("2026-12-24T16:00:00.Z", INSTANT),
        ("2026-12-24T16:00:00ZZ", INSTANT),
        ("2026-12-24T16:00:00Z\n", INSTANT),
        ("2026-02-30T16:00:00Z", "2026-02-30 is not a date of the calendar"),
        ("1969-12-31T23:59:59Z", "must be from 1970-01-01 to 9998-12-31"),
        ("9999-01-01T00:00:00Z", "must be from 1970-01-01 to 9998-12-31"),
        ("2026-12-24T24:00:00Z", "2026-12-24T24:00:00Z is not a time of day (00:00:00 to 23:59:59)"),
        ("2026-12-24T23:59:60Z", "2026-12-24T23:59:60Z is not a time of day (00:00:00 to 23:59:59)"),
        ("2026-12-24T16:00:00+24:00", "2026-12-24T16:00:00+24:00 has no valid offset (-23:59 to +23:59)"),
        ("2026-12-24T16:00:00+01:60", "2026-12-24T16:00:00+01:60 has no valid offset (-23:59 to +23:59)"),
    ],
)
def test_parse_instant_errors(text, message):
    assert parse_instant(text) == (None, message)


def test_parse_start_takes_a_date_or_an_instant():
    assert parse_start("2026-12-24") == (datetime.date(2026, 12, 24), None)
    assert parse_start("2026-12-24T16:00:00Z") == parse_instant("2026-12-24T16:00:00Z")
    assert parse_start("2026-12-24T16:00:00") == (None, NO_OFFSET)
    assert parse_start("2026-02-30") == (None, "2026-02-30 is not a date of the calendar")
    value, message = parse_start("tomorrow")
    assert value is None and message.startswith('must be a date (like "2026-12-24") or a date and time with an offset')


@pytest.mark.parametrize("text, expected", [("1", 1), ("7", 7), ("31", 31), ("07", 7)])
def test_parse_days(text, expected):
    assert parse_days(text) == (expected, None)


@pytest.mark.parametrize("text", ["0", "32", "-1", "", "7.0", "x", " 7", "100", "٧"])
def test_parse_days_errors(text):
    assert parse_days(text) == (None, "must be an integer from 1 to 31")
