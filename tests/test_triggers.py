"""Triggers through the API: the guide's example, the catalogue's errors, partial updates."""

from __future__ import annotations

import json

import pytest

from conftest import client_for, new_key

pytestmark = pytest.mark.anyio

GUIDE_REQUEST = (
    b'{ "active": true, "name": "1st visit greeting", "description": "Greeting message to a visitor who visits your '
    b'website for the 1st time", "event": "onload", "conditions": [ { "name": "delay_site", "value": 60 }, { "name": '
    b'"is_visitor_send_message", "value": false }, { "name": "is_visitor_served", "value": false }, { "name": '
    b'"number_of_visits", "value": 1 } ], "actions": [{ "name": "message", "agent_nick": "Support", "message": "Hello, '
    b'we have noticed you are here for the 1st time. If you have any questions, do not hesitate to get in touch." }] }'
)
GUIDE_RESPONSE = (
    '{ "id": "758", "active": true, "name": "1st visit greeting", "description": "Greeting message to a visitor who '
    'visits your website for the 1st time", "event": "onload", "only_once": true, "constraints": "all", "conditions": '
    '[ { "name": "delay_site", "value": 60 }, { "name": "is_visitor_send_message", "value": false }, { "name": '
    '"is_visitor_served", "value": false }, { "name": "number_of_visits", "value": 1 } ], "actions": [{ "name": '
    '"message", "agent_nick": "Support", "message": "Hello, we have noticed you are here for the 1st time. If you '
    'have any questions, do not hesitate to get in touch." }] }'
)
SIMPLE = {"name": "Hi", "actions": [{"name": "message", "agent_nick": "Ann", "message": "Hello!"}]}


async def account(api):
    return (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()["id"]


async def test_guide_example_byte_for_byte(api):
    aid = await account(api)
    # Request POST: http://api.smartsupp.com/accounts/:aid/triggers/create
    r = await api.post(f"/accounts/{aid}/triggers/create", content=GUIDE_REQUEST)
    assert r.status_code == 200
    expected = json.loads(GUIDE_RESPONSE)
    expected["id"] = r.json()["id"]
    # the same members in the same order, with the same values
    assert list(r.json().items()) == list(expected.items())
    assert r.content == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    assert (await api.get(f"/accounts/{aid}/triggers/{expected['id']}/get")).content == r.content


async def test_defaults_and_cmp_kept_only_when_sent(api):
    aid = await account(api)
    conditions = [{"name": "visitor_page_url", "value": "/pricing", "cmp": "contains"},
                  {"name": "number_of_visits", "value": "2", "cmp": "gte"},
                  {"name": "is_triggered", "value": "false"}]
    r = await api.post(f"/accounts/{aid}/triggers/create", json={**SIMPLE, "conditions": conditions})
    t = r.json()
    assert (t["active"], t["event"], t["only_once"], t["constraints"], t["description"]) == (
        True, "onload", True, "all", ""
    )
    assert t["conditions"] == [
        {"name": "visitor_page_url", "value": "/pricing", "cmp": "contains"},
        {"name": "number_of_visits", "value": 2, "cmp": "gte"},
        {"name": "is_triggered", "value": False},
    ]


async def test_every_event_and_our_conditions(api):
    aid = await account(api)
    for event in ("onload", "onmessage", "onopen"):
        body = {**SIMPLE, "event": event, "constraints": "any",
                "conditions": [{"name": "account_status", "value": "offline"},
                               {"name": "number_of_pages", "value": 3, "cmp": "gt"}]}
        assert (await api.post(f"/accounts/{aid}/triggers/create", json=body)).status_code == 200


@pytest.mark.parametrize(
    "conditions,field,fragment",
    [
        ([{"name": "shoe_size", "value": 42}], "conditions[0].name", "delay_site"),
        ([{"name": "hour_of_day", "value": 24}], "conditions[0].value", "23"),
        ([{"name": "hour_of_day", "value": 3, "cmp": "contains"}], "conditions[0].cmp", "gte"),
        ([{"name": "is_visitor_served", "value": "yes"}], "conditions[0].value", "true or false"),
        ([{"name": "account_status", "value": "away"}], "conditions[0].value", "online, offline"),
        ([{"name": "visitor_page_url", "value": "(a+)+$", "cmp": "regex"}], "conditions[0].value", ""),
        ([{"name": "delay_site", "value": 60}, {"name": "delay_page"}], "conditions[1].value", ""),
        ([{"name": "delay_site", "value": 60, "when": 1}], "conditions[0].when", "name, value, cmp"),
        (["delay_site"], "conditions[0]", ""),
    ],
)
async def test_catalogue_errors_name_the_path_and_what_is_allowed(api, conditions, field, fragment):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/triggers/create", json={**SIMPLE, "conditions": conditions})
    assert r.status_code == 400, r.text
    errors = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert field in errors
    assert fragment in errors[field]
    assert (await api.get(f"/accounts/{aid}/triggers/")).json()["records"] == []


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "x"}, "actions"),
        ({**SIMPLE, "actions": []}, "actions"),
        ({**SIMPLE, "actions": [{"name": "message", "agent_nick": "A"}]}, "actions[0].message"),
        ({**SIMPLE, "actions": [{"name": "email", "agent_nick": "A", "message": "m"}]}, "actions[0].name"),
        ({**SIMPLE, "actions": [{"name": "message", "agent_nick": "A", "message": "m" * 2001}]}, "actions[0].message"),
        ({**SIMPLE, "event": "onclick"}, "event"),
        ({**SIMPLE, "constraints": "some"}, "constraints"),
        ({**SIMPLE, "active": "yes"}, "active"),
        ({**SIMPLE, "name": ""}, "name"),
    ],
)
async def test_other_validation(api, body, field):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/triggers/create", json=body)
    assert r.status_code == 400
    assert field in {e["field"] for e in r.json()["errors"]}


async def test_several_errors_at_once(api):
    aid = await account(api)
    body = {"name": "", "event": "x",
            "conditions": [{"name": "nope", "value": 1}, {"name": "hour_of_day", "value": -1}], "actions": []}
    r = await api.post(f"/accounts/{aid}/triggers/create", json=body)
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"name", "event", "conditions[0].name", "conditions[1].value", "actions"} <= fields


async def test_partial_update(api):
    aid = await account(api)
    t = (await api.post(f"/accounts/{aid}/triggers/create", content=GUIDE_REQUEST)).json()
    r = await api.post(f"/accounts/{aid}/triggers/{t['id']}/update", json={"active": "false"})
    assert r.json() == {**t, "active": False}
    r = await api.post(f"/accounts/{aid}/triggers/{t['id']}/update", json={**t, "conditions": []})
    assert r.json() == {**t, "conditions": []}  # everything sent back, active true again
    r = await api.post(f"/accounts/{aid}/triggers/{t['id']}/update", json={"conditions": [{"name": "x", "value": 1}]})
    assert r.status_code == 400
    assert (await api.get(f"/accounts/{aid}/triggers/{t['id']}/get")).json()["conditions"] == []


async def test_scoping_and_cascade(app, api):
    aid = await account(api)
    t = (await api.post(f"/accounts/{aid}/triggers/create", json=SIMPLE)).json()
    other_aid = await account(api)
    assert (await api.get(f"/accounts/{other_aid}/triggers/{t['id']}/get")).status_code == 404
    async with client_for(app, await new_key(app)) as other:
        assert (await other.get(f"/accounts/{aid}/triggers/{t['id']}/get")).status_code == 404
        assert (await other.get(f"/accounts/{aid}/triggers/{t['id']}/delete")).status_code == 404
    await api.get(f"/accounts/{aid}/delete")
    async with app.db.read() as s:
        assert await s.fetchval("SELECT count(*) FROM triggers WHERE account_id = $1", int(aid)) == 0
