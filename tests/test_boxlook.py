"""The chat box's look through the partner API (/accounts/:aid/box/...), and the box reading it."""

from __future__ import annotations

import json
import re

import pytest

from conftest import client_for, new_key

pytestmark = pytest.mark.anyio

DEFAULT = {"color": "#1565c0", "position": "right", "title": "", "welcome": ""}


async def account(api, title="Acme"):
    return (await api.post("/accounts/create", json={"title": title, "lang": "en"})).json()["id"]


async def test_the_default_look_then_partial_updates(api):
    aid = await account(api)
    assert (await api.get(f"/accounts/{aid}/box/get")).json() == DEFAULT
    r = await api.post(f"/accounts/{aid}/box/update", json={"color": "#AA0000", "position": "left"})
    assert r.status_code == 200 and r.json() == {**DEFAULT, "color": "#aa0000", "position": "left"}
    r = await api.post(f"/accounts/{aid}/box/update", json={"title": "Help", "welcome": "Hi!\nAsk us."})
    assert r.json() == {"color": "#aa0000", "position": "left", "title": "Help", "welcome": "Hi!\nAsk us."}
    assert (await api.get(f"/accounts/{aid}/box/get")).json() == r.json()


@pytest.mark.parametrize(("body", "field"), [
    ({"color": "red"}, "color"), ({"color": "#12345"}, "color"), ({"position": "top"}, "position"),
    ({"title": "x" * 101}, "title"), ({"title": "a\nb"}, "title"), ({"welcome": "x" * 501}, "welcome"),
    ({"color": None}, "color"), ({"shape": "round"}, "shape"),
])
async def test_validation(api, body, field):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/box/update", json=body)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field
    assert (await api.get(f"/accounts/{aid}/box/get")).json() == DEFAULT


async def test_another_partners_account_is_not_found(app, api):
    aid = await account(api)
    async with client_for(app, await new_key(app)) as other:
        assert (await other.get(f"/accounts/{aid}/box/get")).status_code == 404
        assert (await other.post(f"/accounts/{aid}/box/update", json={"title": "Mine"})).status_code == 404
    assert (await api.get(f"/accounts/{aid}/box/get")).json() == DEFAULT


async def test_deleting_the_account_deletes_its_look(api):
    aid = await account(api)
    await api.post(f"/accounts/{aid}/box/update", json={"title": "Help"})
    assert (await api.get(f"/accounts/{aid}/delete")).status_code == 204
    assert (await api.get(f"/accounts/{aid}/box/get")).status_code == 404


async def test_the_box_shows_the_look(api):
    aid = await account(api, title="Acme shop")
    key = (await api.get(f"/accounts/{aid}/get")).json()["accountKey"]
    page = (await api.get(f"/widget?accountKey={key}")).text
    assert "Acme shop" in page
    await api.post(f"/accounts/{aid}/box/update", json={"color": "#00aa00", "position": "left", "title": "Ask <us>",
                                                         "welcome": "Hello there"})
    page = (await api.get(f"/widget?accountKey={key}")).text
    config = json.loads(re.search(r'id="opensupp-config">(.*?)</script>', page).group(1))
    assert config["title"] == "Ask <us>" and config["look"] == {"color": "#00aa00", "position": "left",
                                                                 "welcome": "Hello there"}
    assert "Ask &lt;us&gt;" in page and '<p class="msg system welcome">Hello there</p>' in page
