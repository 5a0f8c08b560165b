"""Office hours through the API: the guide's example (as printed, and corrected)."""

from __future__ import annotations

import json

import anyio
import pytest

from conftest import client_for, new_key

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
    assert (await api.get(f"/accounts/{aid}/officehours/update")).json()["timezone"] == "Europe/Prague"  # GET = empty POST


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"days": [7]}, "days[0]"),
        ({"days": [1, 1]}, "days[1]"),
        ({"timezone": 14.5}, "timezone"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"days": [1], "config": [{"dow": 1, "times": [{"from": 600, "to": 500}]}]}, "config[0].times[0].to"),
        ({"days": [1], "config": [{"dow": 1, "times": [{"from": 0, "to": 1441}]}]}, "config[0].times[0].to"),
        ({"days": [1], "config": [{"dow": 1, "times": [{"from": 0, "to": 600}, {"from": 500, "to": 700}]}]}, "config[0].times[1].from"),
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
    assert (await api.get(f"/accounts/{aid}/officehours/get")).json() == {"active": True, "days": [3], "timezone": 2, "config": []}
