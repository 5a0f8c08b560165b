"""Offline emails: {id, email}, an address at most once per account."""

from __future__ import annotations

import pytest

from conftest import client_for, new_key

pytestmark = pytest.mark.anyio


async def account(api):
    return (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()["id"]


async def test_crud(api):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/offlineemails/create", json={"email": "Support@Acme.example"})
    assert r.status_code == 200
    item = r.json()
    assert set(item) == {"id", "email"} and item["email"] == "Support@Acme.example"
    assert (await api.get(f"/accounts/{aid}/offlineemails/{item['id']}/get")).json() == item
    assert (await api.get(f"/accounts/{aid}/offlineemails/")).json() == {"records": [item], "next": None}
    r = await api.post(f"/accounts/{aid}/offlineemails/{item['id']}/update",
                       json={"email": "help@acme.example", "id": item["id"]})
    assert r.json() == {"id": item["id"], "email": "help@acme.example"}
    assert (await api.get(f"/accounts/{aid}/offlineemails/{item['id']}/delete")).status_code == 204
    assert (await api.get(f"/accounts/{aid}/offlineemails/")).json()["records"] == []


async def test_an_address_once_per_account(api):
    aid, other = await account(api), await account(api)
    r = await api.post(f"/accounts/{aid}/offlineemails/create", json={"email": "a@acme.example"})
    assert r.status_code == 200
    r = await api.post(f"/accounts/{aid}/offlineemails/create", json={"email": "A@ACME.example"})
    assert r.status_code == 409 and r.json()["error"] == "Conflict"
    # another account may list it too
    r = await api.post(f"/accounts/{other}/offlineemails/create", json={"email": "a@acme.example"})
    assert r.status_code == 200
    second = (await api.post(f"/accounts/{aid}/offlineemails/create", json={"email": "b@acme.example"})).json()
    r = await api.post(f"/accounts/{aid}/offlineemails/{second['id']}/update", json={"email": "a@acme.example"})
    assert r.status_code == 409


@pytest.mark.parametrize("body", [{}, {"email": "nope"}, {"email": 5}, {"email": "a@acme.example", "x": 1}])
async def test_validation(api, body):
    aid = await account(api)
    assert (await api.post(f"/accounts/{aid}/offlineemails/create", json=body)).status_code == 400


async def test_scoping(app, api):
    aid = await account(api)
    item = (await api.post(f"/accounts/{aid}/offlineemails/create", json={"email": "a@acme.example"})).json()
    async with client_for(app, await new_key(app)) as other:
        assert (await other.get(f"/accounts/{aid}/offlineemails/{item['id']}/get")).status_code == 404
        assert (await other.get(f"/accounts/{aid}/offlineemails/")).status_code == 404
    other_aid = await account(api)
    assert (await api.get(f"/accounts/{other_aid}/offlineemails/{item['id']}/get")).status_code == 404
