"""Hooks through the API: Smartsupp's shape, URL safety, secrets."""

from __future__ import annotations

import re

import pytest

from conftest import client_for, new_key

pytestmark = pytest.mark.anyio


async def account(api):
    return (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()["id"]


async def create(api, aid, **body):
    r = await api.post(f"/accounts/{aid}/hooks/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def test_smartsupp_shape_and_generated_secret(api):
    aid = await account(api)
    hook = await create(api, aid, name="domain-stats-report", config={"url": "https://crm.example.com/stats"})
    assert list(hook) == ["id", "name", "config", "active", "createdAt", "disabledReason", "previousSecretExpiresAt"]
    assert hook["disabledReason"] is None and hook["previousSecretExpiresAt"] is None
    assert hook["active"] is True and hook["name"] == "domain-stats-report"
    assert hook["config"]["url"] == "https://crm.example.com/stats"
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", hook["config"]["secret"])
    assert (await api.get(f"/accounts/{aid}/hooks/{hook['id']}/get")).json() == hook


async def test_webhook_events_default_to_all(api):
    aid = await account(api)
    hook = await create(api, aid, name="webhook", config={"url": "https://x.example/h"})
    assert len(hook["config"]["events"]) == 7
    config = {"url": "https://x.example/h", "events": ["conversation.closed"], "secret": "s" * 16}
    hook = await create(api, aid, name="webhook", config=config)
    assert hook["config"] == {"url": "https://x.example/h", "secret": "s" * 16, "events": ["conversation.closed"]}


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x", "http://localhost:8080/", "http://10.0.0.5/", "http://192.168.1.1/",
     "http://169.254.169.254/latest", "http://[::1]/", "http://2130706433/", "http://0x7f.1/", "ftp://example.com/",
     "https://user:pw@example.com/", "example.com"],
)
async def test_internal_and_odd_urls_are_refused(api, url):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/hooks/create", json={"name": "conversation-export", "config": {"url": url}})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "config.url"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "nope", "config": {"url": "https://a.example"}}, "name"),
        ({"name": "webhook"}, "config"),
        ({"name": "webhook", "config": {}}, "config.url"),
        ({"name": "webhook", "config": {"url": "https://a.example", "secret": "short"}}, "config.secret"),
        ({"name": "webhook", "config": {"url": "https://a.example", "events": ["nope"]}}, "config.events[0]"),
        ({"name": "domain-stats-report", "config": {"url": "https://a.example", "events": []}}, "config.events"),
    ],
)
async def test_validation(api, body, field):
    aid = await account(api)
    r = await api.post(f"/accounts/{aid}/hooks/create", json=body)
    assert r.status_code == 400
    assert field in {e["field"] for e in r.json()["errors"]}


async def test_update_keeps_the_secret_unless_given(api):
    aid = await account(api)
    hook = await create(api, aid, name="webhook", config={"url": "https://a.example/1"})
    r = await api.post(f"/accounts/{aid}/hooks/{hook['id']}/update", json={"config": {"url": "https://a.example/2"}})
    assert r.json()["config"] == {**hook["config"], "url": "https://a.example/2"}
    r = await api.post(f"/accounts/{aid}/hooks/{hook['id']}/update", json={"active": "0"})
    assert r.json()["active"] is False
    r = await api.post(f"/accounts/{aid}/hooks/{hook['id']}/update", json={"name": "domain-stats-report"})
    assert r.status_code == 200 and "events" not in r.json()["config"]
    r = await api.post(f"/accounts/{aid}/hooks/{hook['id']}/update", json={"config": {"url": "http://127.0.0.1/"}})
    assert r.status_code == 400
    assert (await api.get(f"/accounts/{aid}/hooks/{hook['id']}/get")).json()["config"]["url"] == "https://a.example/2"


@pytest.mark.parametrize("field", ["name", "config", "active"])
async def test_update_refuses_null(api, field):
    aid = await account(api)
    hook = await create(api, aid, name="webhook", config={"url": "https://a.example/1"})
    r = await api.post(f"/accounts/{aid}/hooks/{hook['id']}/update", json={field: None})
    assert r.status_code == 400
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert (await api.get(f"/accounts/{aid}/hooks/{hook['id']}/get")).json() == hook


async def test_scoping(app, api):
    aid = await account(api)
    hook = await create(api, aid, name="webhook", config={"url": "https://a.example/1"})
    async with client_for(app, await new_key(app)) as other:
        r = await other.get(f"/accounts/{aid}/hooks/{hook['id']}/get")
        assert r.status_code == 404 and "secret" not in r.text
    assert (await api.get(f"/accounts/{await account(api)}/hooks/{hook['id']}/get")).status_code == 404
