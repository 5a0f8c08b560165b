"""The REST API guide's /test and account examples, replayed verbatim."""

from __future__ import annotations

import re

import pytest

from conftest import client_for

pytestmark = pytest.mark.anyio


async def test_test_with_header_key(app, key):
    # Request GET: http://api.smartsupp.com/test Headers: { "apiKey": "YOUR_API_KEY" }
    async with client_for(app) as c:
        r = await c.get("/test", headers={"apiKey": key})
    # Response HTTP/1.1 200 OK { "success": true }
    assert r.status_code == 200
    assert r.json() == {"success": True}


async def test_test_with_invalid_key(anon):
    r = await anon.get("/test", headers={"apiKey": "xxxx"})
    # HTTP/1.1 401 Unauthorized { "error": "AuthError", "message": "No account found for apiKey xxxx." }
    assert r.status_code == 401
    assert r.json() == {"error": "AuthError", "message": "No account found for apiKey xxxx."}


async def test_create_account_example(api):
    # Request POST: http://api.smartsupp.com/accounts/create
    body = '{ "title": "Account name (not visible to clients)", "lang": "en" }'
    r = await api.post("/accounts/create", content=body)
    # Response HTTP/1.1 200 OK { "id": "1234", "title": "Account name (not visible to clients)",
    #   "lang": "en", "accountKey": "14dcb138dae8a700612b39bbc5f5572377f167" }
    assert r.status_code == 200
    account = r.json()
    assert re.fullmatch(r"[1-9][0-9]*", account["id"])
    assert account["title"] == "Account name (not visible to clients)"
    assert account["lang"] == "en"
    assert re.fullmatch(r"[0-9a-f]{40}", account["accountKey"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", account["createdAt"])
    assert set(account) == {"id", "title", "lang", "accountKey", "createdAt"}


async def test_created_account_reads_back(api):
    body = {"title": "Account name (not visible to clients)", "lang": "en"}
    created = (await api.post("/accounts/create", json=body)).json()
    r = await api.get(f"/accounts/{created['id']}/get")
    assert r.status_code == 200
    assert r.json() == created
