"""POST /accounts/:aid/triggers/evaluate: every trigger of the account, decided for a visitor
(a dry run), through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from conftest import client_for, new_key
from opensupp.app import create_app
from test_triggers import GUIDE_REQUEST, SIMPLE, account

pytestmark = pytest.mark.anyio

FIRST_VISIT = {
    "seconds_on_site": 0, "seconds_on_page": 0, "number_of_visits": 1, "number_of_pages": 1, "number_of_chats": 0,
    "is_visitor_send_message": False, "is_visitor_served": False, "is_triggered": False, "visitor_group": "",
    "visitor_ip": "", "visitor_city": "", "visitor_country_code": "", "visitor_page_url": "", "visitor_page_title": "",
    "visitor_referer": "", "visitor_language": "", "account_status": "online", "fired_triggers": [],
}


async def create(api, aid, **fields):
    r = await api.post(f"/accounts/{aid}/triggers/create", json={**SIMPLE, **fields})
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def evaluate(api, aid, body=None, status=200):
    r = await api.post(f"/accounts/{aid}/triggers/evaluate", json=body if body is not None else {})
    assert r.status_code == status, r.text
    return r.json()


async def test_the_guides_trigger_first_time_and_returning_visitor(api):
    aid = await account(api)
    tid = (await api.post(f"/accounts/{aid}/triggers/create", content=GUIDE_REQUEST)).json()["id"]
    first = await evaluate(api, aid, {"event": "onload", "visitor": {"seconds_on_site": 0}})
    decision = first["triggers"][0]
    assert (decision["id"], decision["name"], decision["fires"], decision["after"], decision["why"]) == (
        tid, "1st visit greeting", "later", 60, None)
    assert [r["name"] for r in decision["reasons"]] == [
        "delay_site", "is_visitor_send_message", "is_visitor_served", "number_of_visits"]
    assert decision["reasons"][0] == {"name": "delay_site", "cmp": "eq", "expected": 60, "actual": 0, "ok": True,
                                      "wait": 60}
    assert decision["reasons"][3] == {"name": "number_of_visits", "cmp": "eq", "expected": 1, "actual": 1, "ok": True,
                                      "at": 60}
    assert (await evaluate(api, aid, {"visitor": {"seconds_on_site": "20"}}))["triggers"][0]["after"] == 40
    returning = (await evaluate(api, aid, {"visitor": {"number_of_visits": 2}}))["triggers"][0]
    assert (returning["fires"], returning["after"]) == ("never", None)
    assert returning["why"] == "conditions: number_of_visits eq 1 does not hold in 60 s (actual: 2)"
    assert returning["reasons"][3]["ok"] is False


async def test_every_trigger_of_the_account_by_id_with_the_gates(api):
    aid = await account(api)
    ids = [
        await create(api, aid, conditions=[{"name": "visitor_page_url", "value": "/Pricing", "cmp": "contains"}]),
        await create(api, aid, active=False),
        await create(api, aid, event="onmessage"),
        await create(api, aid),  # only_once, fired already
        await create(api, aid, only_once=False),
        await create(api, aid, constraints="any", conditions=[{"name": "delay_page", "value": 30},
                                                             {"name": "account_status", "value": "offline"}]),
    ]
    visitor = {"visitor_page_url": "https://shop.test/pricing", "seconds_on_page": 10,
               "fired_triggers": [ids[3], ids[4]]}
    out = await evaluate(api, aid, {"visitor": visitor})
    got = [(d["id"], d["fires"], d["after"]) for d in out["triggers"]]
    assert got == [(ids[0], "now", 0), (ids[1], "never", None), (ids[2], "never", None), (ids[3], "never", None),
                   (ids[4], "now", 0), (ids[5], "later", 20)]
    whys = [d["why"] for d in out["triggers"]]
    assert whys[1] == "inactive: the trigger's active is false"
    assert whys[2] == "event: the trigger runs onmessage, not onload"
    assert whys[3] == f"only_once: trigger {ids[3]} has already fired for this visitor (fired_triggers)"
    on_message = await evaluate(api, aid, {"event": "onmessage", "visitor": visitor})
    assert on_message["event"] == "onmessage" and on_message["triggers"][2]["fires"] == "now"


async def test_the_answer_echoes_the_situation_with_defaults(api):
    aid = await account(api)
    out = await evaluate(api, aid, {"at": "2026-05-04T12:30:15.250+02:00"})
    assert out == {
        "event": "onload", "at": "2026-05-04T10:30:15Z", "timezone": 0, "visitor": FIRST_VISIT, "triggers": []
    }
    out = await evaluate(api, aid, {"visitor": {"seconds_on_site": 30, "fired_triggers": [12], "visitor_city": None}})
    assert out["visitor"] == FIRST_VISIT | {"seconds_on_site": 30, "seconds_on_page": 30, "fired_triggers": ["12"],
                                            "is_triggered": True}
    assert (await evaluate(api, aid, {"event": "onmessage"}))["visitor"]["is_visitor_send_message"] is True


async def test_get_counts_as_an_empty_post(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/triggers/create", content=GUIDE_REQUEST)
    r = await api.get(f"/accounts/{aid}/triggers/evaluate/")
    assert r.status_code == 200
    assert r.json()["event"] == "onload" and r.json()["triggers"][0]["after"] == 60
    r = await api.put(f"/accounts/{aid}/triggers/evaluate")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"


async def test_timezone_from_office_hours(api):
    aid = await account(api)
    await create(api, aid, conditions=[{"name": "hour_of_day", "value": 9}, {"name": "day_of_week", "value": 4},
                                       {"name": "month_of_year", "value": 0}])
    at = {"at": "2026-01-15T14:00:00Z"}  # Thursday 15 January, 14:00 UTC
    utc = await evaluate(api, aid, at)
    assert utc["timezone"] == 0 and utc["triggers"][0]["fires"] == "never"
    assert utc["triggers"][0]["reasons"][0]["actual"] == 14
    r = await api.post(f"/accounts/{aid}/officehours/update",
                       json={"timezone": "America/New_York", "active": True, "days": [4]})
    assert r.status_code == 200, r.text
    new_york = await evaluate(api, aid, at)
    assert new_york["timezone"] == "America/New_York"
    assert new_york["triggers"][0]["fires"] == "now"
    assert [x["actual"] for x in new_york["triggers"][0]["reasons"]] == [9, 4, 0]
    await api.post(f"/accounts/{aid}/officehours/update", json={"timezone": 5.5})
    india = await evaluate(api, aid, {"at": "2026-01-15T03:30:00Z"})
    assert india["timezone"] == 5.5 and india["triggers"][0]["fires"] == "now"


async def test_instants_at_the_edges_of_the_calendar(api):
    aid = await account(api)
    await create(api, aid, conditions=[{"name": "hour_of_day", "value": 0, "cmp": "gte"}])
    edge = await evaluate(api, aid, {"at": "0001-01-01T00:00:00+23:59"})  # UTC is still in year 0
    assert edge["at"] == "0001-01-01T00:00:00+23:59"
    assert edge["triggers"][0]["fires"] == "never" and edge["triggers"][0]["reasons"][0]["actual"] is None
    leap = await evaluate(api, aid, {"at": "2016-12-31t23:59:60.5z"})  # a leap second, lower case
    assert leap["at"] == "2016-12-31T23:59:59Z" and leap["triggers"][0]["fires"] == "now"


async def test_a_changed_trigger_is_evaluated_as_changed(api):
    aid = await account(api)
    tid = await create(api, aid, conditions=[{"name": "number_of_visits", "value": 1}])
    assert (await evaluate(api, aid))["triggers"][0]["fires"] == "now"
    r = await api.post(f"/accounts/{aid}/triggers/{tid}/update",
                       json={"conditions": [{"name": "number_of_visits", "value": 2}]})
    assert r.status_code == 200
    assert (await evaluate(api, aid))["triggers"][0]["fires"] == "never"
    await api.post(f"/accounts/{aid}/triggers/{tid}/update", json={"name": "renamed", "active": False})
    decision = (await evaluate(api, aid))["triggers"][0]
    assert (decision["name"], decision["why"]) == ("renamed", "inactive: the trigger's active is false")
    await api.get(f"/accounts/{aid}/triggers/{tid}/delete")
    assert (await evaluate(api, aid))["triggers"] == []


async def test_a_second_server_sees_every_write_of_another(app, settings, key, api):
    """Each process keeps its plans; a trigger written through another process (another app
    on the same database) is evaluated as written, created, changed (twice) or deleted."""
    aid = await account(api)
    first = await create(api, aid, conditions=[{"name": "number_of_visits", "value": 1}])
    other_app = create_app(settings)
    await other_app.startup()
    try:
        async with client_for(other_app, key) as other:
            async def fires():
                return [(t["id"], t["fires"]) for t in (await evaluate(other, aid))["triggers"]]

            assert await fires() == [(first, "now")]  # cached by the other server from here on
            second = await create(api, aid, conditions=[{"name": "number_of_visits", "value": 2}])
            assert await fires() == [(first, "now"), (second, "never")]
            for visits, expected in ((2, "never"), (1, "now")):  # one row's version grows; the count does not
                r = await api.post(f"/accounts/{aid}/triggers/{first}/update",
                                   json={"conditions": [{"name": "number_of_visits", "value": visits}]})
                assert r.status_code == 200
                assert await fires() == [(first, expected), (second, "never")]
            await api.get(f"/accounts/{aid}/triggers/{second}/delete")
            third = await create(api, aid)  # the same count again, a higher id
            assert await fires() == [(first, "now"), (third, "now")]
            await api.get(f"/accounts/{aid}/triggers/{first}/delete")
            await api.get(f"/accounts/{aid}/triggers/{third}/delete")
            assert await fires() == []
    finally:
        await other_app.shutdown()


async def test_not_found_for_another_partner_or_no_account(app, api):
    aid = await account(api)
    await create(api, aid)
    async with client_for(app, await new_key(app)) as other:
        r = await other.post(f"/accounts/{aid}/triggers/evaluate", json={})
        assert r.status_code == 404 and r.json() == {"error": "NotFound", "message": f"No account {aid}."}
        assert (await other.get(f"/accounts/{aid}/triggers/evaluate")).status_code == 404
    r = await api.post("/accounts/999999999/triggers/evaluate", json={})
    assert r.status_code == 404


async def test_needs_a_key(anon):
    assert (await anon.post("/accounts/1/triggers/evaluate", json={})).status_code == 401


@pytest.mark.parametrize(
    "body,field,message",
    [
        ({"visitor": {"number_of_visits": 0}}, "visitor.number_of_visits", "must be >= 1"),
        ({"visitor": {"seconds_on_site": -1}}, "visitor.seconds_on_site", "must be >= 0"),
        ({"visitor": {"seconds_on_page": 1.5}}, "visitor.seconds_on_page", "must be an integer"),
        ({"visitor": {"number_of_chats": True}}, "visitor.number_of_chats", "must be an integer"),
        ({"visitor": {"is_visitor_served": "yes"}}, "visitor.is_visitor_served", "must be true or false"),
        ({"visitor": {"is_triggered": None}}, "visitor.is_triggered", "must be true or false"),
        ({"visitor": {"visitor_city": 5}}, "visitor.visitor_city", "must be a string"),
        ({"visitor": {"visitor_page_url": "x" * 2001}}, "visitor.visitor_page_url", "must be at most 2000 characters"),
        ({"visitor": {"visitor_page_title": "a\nb"}}, "visitor.visitor_page_title",
         "must not contain control characters"),
        ({"visitor": {"account_status": "away"}}, "visitor.account_status", "must be one of: online or offline"),
        ({"visitor": {"fired_triggers": ["1", "01"]}}, "visitor.fired_triggers[1]",
         'must be a trigger id (decimal digits, like "12")'),
        ({"visitor": {"fired_triggers": ["1"] * 1001}}, "visitor.fired_triggers", "must have at most 1000 items"),
        ({"visitor": {"shoe_size": 42}}, "visitor.shoe_size", "is not a known field (allowed: seconds_on_site, "),
        ({"visitor": []}, "visitor", "must be an object"),
        ({"event": "onclick"}, "event", "must be one of: onload, onmessage or onopen"),
        ({"at": "tomorrow"}, "at", "must be a date-time with an offset (RFC 3339)"),
        ({"at": "2026-05-04T10:00:00"}, "at", "must be a date-time with an offset (RFC 3339)"),
        ({"at": "2026-02-30T10:00:00Z"}, "at", "must be a date and time that exist (day is out of range for month)"),
        ({"at": "2026-02-03T10:00:00+24:00"}, "at", "must be a date-time with an offset (RFC 3339)"),
        ({"at": "2026-02-03T10:00:61Z"}, "at", "must be a date and time that exist (second must be in 0..60)"),
        ({"visitr": {}}, "visitr", "is not a known field (allowed: event, at, visitor)"),
    ],
)
async def test_bad_bodies_name_the_exact_place(api, body, field, message):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/triggers/evaluate", json=body)
    assert r.status_code == 400, r.text
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert list(errors) == [field]
    assert errors[field].startswith(message)


async def test_every_problem_at_once(api):
    aid = await account(api)
    body = {"event": "x", "at": 1, "visitor": {"number_of_pages": 0, "fired_triggers": ["a"], "z": 1}}
    r = await api.post(f"/accounts/{aid}/triggers/evaluate", json=body)
    assert {e["field"] for e in r.json()["errors"]} == {
        "event", "at", "visitor.number_of_pages", "visitor.fired_triggers[0]", "visitor.z"}


async def test_it_writes_nothing(app, api):
    aid = await account(api)
    await create(api, aid)
    before = (await api.get(f"/accounts/{aid}/triggers/")).json()
    await evaluate(api, aid, {"visitor": {"fired_triggers": [before["records"][0]["id"]]}})
    assert (await api.get(f"/accounts/{aid}/triggers/")).json() == before
    async with app.db.read() as s:
        assert await s.fetchval("SELECT count(*) FROM office_hours WHERE account_id = $1", int(aid)) == 0
