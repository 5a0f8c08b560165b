"""Office hours through the API: the guide's example (as printed, and corrected)."""

from __future__ import annotations

import datetime
import json
import re

import anyio
import pytest

from conftest import client_for, new_key
from opensupp.officehours.api import YEAR_PATTERN
from opensupp.officehours.validation import FIRST_DATE, LAST_DATE

pytestmark = pytest.mark.anyio

# The guide's request exactly as printed: a comma is missing after "active": true.
AS_PRINTED = (
    b'{ "active": true "days": [1,2,6,0], "timezone": 1, "config": [{ "dow": 1, "times": [ { "from": 480, "to": 705 },'
    b' { "from": 780, "to": 1020 } ] }, { "dow": 2, "times": [ { "from": 480, "to": 705 } ] }] }'
)
CORRECTED = AS_PRINTED.replace(b'"active": true "days"', b'"active": true, "days"')


async def account(api):
    return (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()["id"]


async def test_default_before_any_update(api):
    aid = await account(api)
    r = await api.get(f"/accounts/{aid}/officehours/get")
    assert r.json() == {"active": False, "days": [], "timezone": 0, "config": []}


async def test_guide_example_as_printed_is_invalid_json_with_its_position(api):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/officehours/update", content=AS_PRINTED)
    assert r.status_code == 400
    assert r.json()["error"] == "InvalidJSON"
    assert "line 1, column 18" in r.json()["message"]
    assert (await api.get(f"/accounts/{aid}/officehours/get")).json()["active"] is False


async def test_guide_example_corrected_reads_back_identical(api):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/officehours/update", content=CORRECTED)
    assert r.status_code == 200
    assert r.json() == json.loads(CORRECTED)
    assert list(r.json()) == ["active", "days", "timezone", "config"]
    assert (await api.get(f"/accounts/{aid}/officehours/get")).json() == json.loads(CORRECTED)


async def test_partial_update_and_merged_validation(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update", content=CORRECTED)
    r = await api.post(f"/accounts/{aid}/officehours/update", json={"timezone": "Europe/Prague"})
    assert r.json() == {**json.loads(CORRECTED), "timezone": "Europe/Prague"}
    # dropping day 2 from days while config still has an entry for it
    r = await api.post(f"/accounts/{aid}/officehours/update", json={"days": [1]})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "config[1].dow"
    assert (await api.get(f"/accounts/{aid}/officehours/get")).json()["timezone"] == "Europe/Prague"
    # GET = empty POST
    assert (await api.get(f"/accounts/{aid}/officehours/update")).json()["timezone"] == "Europe/Prague"


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"days": [7]}, "days[0]"),
        ({"days": [1, 1]}, "days[1]"),
        ({"timezone": 14.5}, "timezone"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"days": [1], "config": [{"dow": 1, "times": [{"from": 600, "to": 500}]}]}, "config[0].times[0].to"),
        ({"days": [1], "config": [{"dow": 1, "times": [{"from": 0, "to": 1441}]}]}, "config[0].times[0].to"),
        ({"days": [1], "config": [{"dow": 1, "times": [{"from": 0, "to": 600}, {"from": 500, "to": 700}]}]},
         "config[0].times[1].from"),
        ({"days": [1], "config": [{"dow": 1, "times": []}, {"dow": 1, "times": []}]}, "config[1].dow"),
        ({"active": "maybe"}, "active"),
        ({"holidays": []}, "holidays"),
    ],
)
async def test_validation_names_the_path(api, patch, field):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/officehours/update", json=patch)
    assert r.status_code == 400
    assert field in {e["field"] for e in r.json()["errors"]}


async def test_touching_intervals_numeric_strings_and_quarter_offsets(api):
    aid = await account(api)
    body = {"active": "true", "days": ["1"], "timezone": "5.75",
            "config": [{"dow": "1", "times": [{"from": "480", "to": "705"}, {"from": 705, "to": 800}]}]}
    r = await api.post(f"/accounts/{aid}/officehours/update", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"active": True, "days": [1], "timezone": 5.75,
                        "config": [{"dow": 1, "times": [{"from": 480, "to": 705}, {"from": 705, "to": 800}]}]}


async def test_no_list_or_create(api):
    aid = await account(api)
    assert (await api.get(f"/accounts/{aid}/officehours/")).status_code == 404
    assert (await api.post(f"/accounts/{aid}/officehours/create", json={})).status_code == 404


async def test_scoping_and_cascade(app, api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update", content=CORRECTED)
    async with client_for(app, await new_key(app)) as other:
        assert (await other.get(f"/accounts/{aid}/officehours/get")).status_code == 404
        r = await other.post(f"/accounts/{aid}/officehours/update", json={"active": False})
        assert r.status_code == 404
    assert (await api.get(f"/accounts/{aid}/officehours/get")).json()["active"] is True
    await api.get(f"/accounts/{aid}/delete")
    async with app.db.read() as s:
        assert await s.fetchval("SELECT count(*) FROM office_hours WHERE account_id = $1", int(aid)) == 0


async def test_concurrent_partial_updates_lose_nothing(api):
    aid = await account(api)

    async def patch(body):
        assert (await api.post(f"/accounts/{aid}/officehours/update", json=body)).status_code == 200

    async with anyio.create_task_group() as tg:
        tg.start_soon(patch, {"timezone": 2})
        tg.start_soon(patch, {"active": True})
        tg.start_soon(patch, {"days": [3]})
    assert (await api.get(f"/accounts/{aid}/officehours/get")).json() == {
        "active": True, "days": [3], "timezone": 2, "config": []
    }


# ----------------------------------------------------------------------------- exceptions

HOLIDAYS = [
    {"date": "2026-12-24", "times": [{"from": 0, "to": 960}]},
    {"date": "2026-12-25", "times": []},
]


async def test_exceptions_are_stored_answered_and_removed(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update", content=CORRECTED)
    r = await api.post(f"/accounts/{aid}/officehours/update", json={"exceptions": HOLIDAYS})
    assert r.status_code == 200, r.text
    assert r.json() == {**json.loads(CORRECTED), "exceptions": HOLIDAYS}
    assert list(r.json()) == ["active", "days", "timezone", "config", "exceptions"]
    # another partial update keeps them; a new list replaces them as a whole
    r = await api.post(f"/accounts/{aid}/officehours/update", json={"timezone": 2})
    assert r.json()["exceptions"] == HOLIDAYS
    r = await api.post(f"/accounts/{aid}/officehours/update",
                       json={"exceptions": [{"date": "2027-01-01", "times": []}]})
    assert r.json()["exceptions"] == [{"date": "2027-01-01", "times": []}]
    # [] removes the key: the answer is exactly what it was before exceptions existed
    r = await api.post(f"/accounts/{aid}/officehours/update", json={"exceptions": [], "timezone": 1})
    assert r.json() == json.loads(CORRECTED)
    assert (await api.get(f"/accounts/{aid}/officehours/get")).content == (
        b'{"active":true,"days":[1,2,6,0],"timezone":1,"config":[{"dow":1,"times":[{"from":480,"to":705},'
        b'{"from":780,"to":1020}]},{"dow":2,"times":[{"from":480,"to":705}]}]}'
    )


async def test_default_stays_byte_identical(api):
    aid = await account(api)
    r = await api.get(f"/accounts/{aid}/officehours/get")
    assert r.content == b'{"active":false,"days":[],"timezone":0,"config":[]}'
    r = await api.post(f"/accounts/{aid}/officehours/update", json={"exceptions": []})
    assert r.content == b'{"active":false,"days":[],"timezone":0,"config":[]}'


@pytest.mark.parametrize(
    "exceptions, field",
    [
        ([{"date": "2026-12-24", "times": []}, {"date": "2026-12-24", "times": []}], "exceptions[1].date"),
        ([{"date": "2026-02-30", "times": []}], "exceptions[0].date"),
        ([{"date": "24.12.2026", "times": []}], "exceptions[0].date"),
        ([{"date": "2026-12-24", "times": [{"from": 600, "to": 500}]}], "exceptions[0].times[0].to"),
        ([{"date": "2026-12-23", "times": []},
          {"date": "2026-12-24", "times": [{"from": 0, "to": 600}, {"from": 500, "to": 700}]}],
         "exceptions[1].times[1].from"),
        ([{"date": "2026-12-24", "times": [], "open": False}], "exceptions[0].open"),
        ([{"times": []}], "exceptions[0].date"),
        ([{"date": "2026-12-24"}], "exceptions[0].times"),
        ({"date": "2026-12-24"}, "exceptions"),
        ([{"date": "2026-01-01", "times": []}] * 367, "exceptions"),
    ],
)
async def test_exception_validation_names_the_path(api, exceptions, field):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/officehours/update", json={"exceptions": exceptions})
    assert r.status_code == 400
    assert r.json()["error"] == "ValidationError"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert (await api.get(f"/accounts/{aid}/officehours/get")).json() == {
        "active": False, "days": [], "timezone": 0, "config": []
    }


# ----------------------------------------------------------------------------- status and schedule


async def test_status_of_an_account_never_updated_is_always_open(api):
    aid = await account(api)
    r = await api.get(f"/accounts/{aid}/officehours/status")
    assert r.status_code == 200
    assert r.json() == {"open": True, "since": None, "next_change": None, "timezone": 0}


@pytest.mark.parametrize(
    "at, expected",
    [
        ("2026-12-21T06:59:59Z",
         {"open": False, "since": "2026-12-20T23:00:00Z", "next_change": "2026-12-21T07:00:00Z"}),
        ("2026-12-21T08:00:00+01:00",
         {"open": True, "since": "2026-12-21T07:00:00Z", "next_change": "2026-12-21T10:45:00Z"}),
        ("2026-12-21T10:45:00Z",
         {"open": False, "since": "2026-12-21T10:45:00Z", "next_change": "2026-12-21T12:00:00Z"}),
        ("2026-12-26T12:00:00Z",
         {"open": True, "since": "2026-12-25T23:00:00Z", "next_change": "2026-12-27T23:00:00Z"}),
    ],
)
async def test_status_at_an_instant(api, at, expected):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update", content=CORRECTED)
    r = await api.get(f"/accounts/{aid}/officehours/status", params={"at": at})
    assert r.status_code == 200, r.text
    assert r.json() == {**expected, "timezone": 1}


async def test_status_with_an_unescaped_plus_and_exceptions(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update",
                   json={"active": True, "days": [0, 1, 2, 3, 4, 5, 6], "timezone": "Europe/Prague",
                         "exceptions": HOLIDAYS})
    # "+01:00" sent as is arrives as " 01:00": still understood
    r = await api.get(f"/accounts/{aid}/officehours/status?at=2026-12-24T16:00:00+01:00")
    assert r.json() == {"open": False, "since": "2026-12-24T15:00:00Z", "next_change": "2026-12-25T23:00:00Z",
                        "timezone": "Europe/Prague"}
    r = await api.get(f"/accounts/{aid}/officehours/status", params={"at": "2026-12-24T14:00:00Z"})
    assert r.json()["open"] is True and r.json()["since"] is None


async def test_status_defaults_to_now(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update", json={"active": True, "days": [], "timezone": 0})
    assert (await api.get(f"/accounts/{aid}/officehours/status")).json() == {
        "open": False, "since": None, "next_change": None, "timezone": 0}


@pytest.mark.parametrize(
    "at, message_part",
    [
        ("2026-12-24T16:00:00", "needs an offset"),
        ("2026-12-24", "with an offset"),
        ("", "with an offset"),
        ("yesterday", "with an offset"),
        ("1969-12-31T23:59:59Z", "from 1970-01-01 to 9998-12-31"),
        ("9999-12-31T00:00:00Z", "from 1970-01-01 to 9998-12-31"),
        ("2026-02-30T00:00:00Z", "not a date of the calendar"),
        ("2026-12-24T25:00:00Z", "not a time of day"),
    ],
)
async def test_status_at_errors_are_400_naming_at(api, at, message_part):
    aid = await account(api)
    r = await api.get(f"/accounts/{aid}/officehours/status", params={"at": at})
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "ValidationError"
    assert [e["field"] for e in body["errors"]] == ["at"]
    assert message_part in body["errors"][0]["message"]
    assert body["message"].startswith("Invalid request: at: ")


async def test_schedule_of_local_days(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update", content=CORRECTED)
    r = await api.get(f"/accounts/{aid}/officehours/schedule", params={"from": "2026-12-21", "days": "7"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "timezone": 1,
        "from": "2026-12-20T23:00:00Z",  # midnight of 2026-12-21 at UTC+1
        "to": "2026-12-27T23:00:00Z",
        "intervals": [
            {"from": "2026-12-21T07:00:00Z", "to": "2026-12-21T10:45:00Z"},
            {"from": "2026-12-21T12:00:00Z", "to": "2026-12-21T16:00:00Z"},
            {"from": "2026-12-22T07:00:00Z", "to": "2026-12-22T10:45:00Z"},
            {"from": "2026-12-25T23:00:00Z", "to": "2026-12-27T23:00:00Z"},  # Saturday and Sunday: one
        ],
    }


async def test_schedule_from_an_instant_is_clipped(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update", content=CORRECTED)
    r = await api.get(f"/accounts/{aid}/officehours/schedule", params={"from": "2026-12-27T12:00:00Z", "days": 1})
    assert r.json() == {"timezone": 1, "from": "2026-12-27T12:00:00Z", "to": "2026-12-28T12:00:00Z", "intervals": [
        {"from": "2026-12-27T12:00:00Z", "to": "2026-12-27T23:00:00Z"},
        {"from": "2026-12-28T07:00:00Z", "to": "2026-12-28T10:45:00Z"},
    ]}


async def test_schedule_days_are_local_days_across_daylight_saving(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update",
                   json={"active": True, "days": [0, 6], "timezone": "Europe/Prague",
                         "exceptions": [{"date": "2026-03-29", "times": [{"from": 0, "to": 150}]}]})
    r = await api.get(f"/accounts/{aid}/officehours/schedule", params={"from": "2026-03-28", "days": 2})
    assert r.json() == {"timezone": "Europe/Prague", "from": "2026-03-27T23:00:00Z", "to": "2026-03-29T22:00:00Z",
                        "intervals": [{"from": "2026-03-27T23:00:00Z", "to": "2026-03-29T01:00:00Z"}]}


async def test_schedule_defaults_to_a_week_from_today(api):
    aid = await account(api)
    r = await api.get(f"/accounts/{aid}/officehours/schedule")
    body = r.json()
    assert body["from"].endswith("T00:00:00Z") and body["timezone"] == 0
    start = datetime.datetime.fromisoformat(body["from"])
    assert datetime.datetime.fromisoformat(body["to"]) - start == datetime.timedelta(days=7)
    assert abs(start.date() - datetime.datetime.now(datetime.UTC).date()) <= datetime.timedelta(days=1)
    assert body["intervals"] == [{"from": body["from"], "to": body["to"]}]  # inactive: always open


@pytest.mark.parametrize(
    "params, field, message_part",
    [
        ({"days": "0"}, "days", "from 1 to 31"),
        ({"days": "32"}, "days", "from 1 to 31"),
        ({"days": "seven"}, "days", "from 1 to 31"),
        ({"days": ""}, "days", "from 1 to 31"),
        ({"from": "2026-12-24T00:00:00"}, "from", "needs an offset"),
        ({"from": "next week"}, "from", "must be a date"),
        ({"from": "2026-02-30"}, "from", "not a date of the calendar"),
        ({"from": "1969-12-01"}, "from", "from 1970-01-01 to 9998-12-31"),
    ],
)
async def test_schedule_query_errors_are_400_naming_the_parameter(api, params, field, message_part):
    aid = await account(api)
    r = await api.get(f"/accounts/{aid}/officehours/schedule", params=params)
    assert r.status_code == 400
    assert r.json()["error"] == "ValidationError"
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert message_part in r.json()["errors"][0]["message"]


async def test_status_and_schedule_are_scoped_reads(app, api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/officehours/update", content=CORRECTED)
    async with client_for(app, await new_key(app)) as other:
        for path in ("status", "schedule"):
            r = await other.get(f"/accounts/{aid}/officehours/{path}")
            assert r.status_code == 404 and r.json()["error"] == "NotFound"
    for path in ("status", "schedule"):
        assert (await api.get(f"/accounts/999999999/officehours/{path}")).status_code == 404
        assert (await api.get(f"/accounts/{aid}/officehours/{path}/")).status_code == 200  # trailing slash
        r = await api.post(f"/accounts/{aid}/officehours/{path}", json={})
        assert r.status_code == 405 and r.headers["allow"] == "GET"


def test_openapi_year_pattern_is_the_rules_range():
    pattern = re.compile(f"^{YEAR_PATTERN}$")
    years = [y for y in range(1, 10000) if pattern.match(f"{y:04d}")]
    assert (years[0], years[-1], len(years)) == (FIRST_DATE.year, LAST_DATE.year, LAST_DATE.year - FIRST_DATE.year + 1)
