"""API keys: where they may come from, how they are stored, how they stop working."""

from __future__ import annotations

import io

import anyio
import pytest

from conftest import client_for
from opensupp.app import create_app
from opensupp.config import Settings
from opensupp.partners import service as partners

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("header", ["apiKey", "apikey", "APIKEY", "ApiKey"])
async def test_header_in_any_case(anon, key, header):
    r = await anon.get("/test", headers={header: key})
    assert r.json() == {"success": True}


async def test_query_parameter(anon, key):
    r = await anon.get("/test", params={"apiKey": key})
    assert r.json() == {"success": True}


async def test_header_wins_over_query(anon, key):
    assert (await anon.get("/test", params={"apiKey": "wrong"}, headers={"apiKey": key})).status_code == 200
    r = await anon.get("/test", params={"apiKey": key}, headers={"apiKey": "wrong"})
    assert r.status_code == 401
    assert r.json()["message"] == "No account found for apiKey wrong."


async def test_keys_are_stored_only_hashed(app, key):
    async with app.db.read() as session:
        rows = await session.fetch("SELECT * FROM api_keys")
    dump = repr([tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows])
    assert key not in dump
    assert key[12:] not in dump
    assert key[:12] in dump  # the prefix, so keys list can tell keys apart


async def test_revoked_key_stops_working(app, key):
    async with client_for(app, key) as c:
        assert (await c.get("/test")).status_code == 200
        async with app.db.transaction() as session:
            await partners.revoke_key(session, ref=key[:12])
        assert (await c.get("/test")).status_code == 401


async def test_key_cache_expires(database_url, key):
    app = create_app(Settings(database_url=database_url, key_cache_seconds=0.5))
    await app.startup()
    try:
        async with client_for(app, key) as c:
            assert (await c.get("/test")).status_code == 200
            async with app.db.transaction() as session:
                await partners.revoke_key(session, ref=key[:12])
            await anyio.sleep(0.6)
            assert (await c.get("/test")).status_code == 401
    finally:
        await app.shutdown()


async def test_two_keys_one_partner_see_the_same_accounts(app, key):
    async with app.db.transaction() as session:
        partner_id = (await partners.authenticate(session, key_hash=partners.hash_key(key))).partner_id
        second = await partners.create_key(session, partner_id=partner_id, name="second")
    async with client_for(app, key) as a, client_for(app, second) as b:
        created = (await a.post("/accounts/create", json={"title": "x", "lang": "en"})).json()
        assert (await b.get(f"/accounts/{created['id']}/get")).json() == created


async def test_last_use_is_recorded(app, key):
    async with client_for(app, key) as c:
        await c.get("/test")
    for _ in range(50):
        async with app.db.read() as session:
            used = await session.fetchval("SELECT last_used_at FROM api_keys WHERE key_hash = $1", partners.hash_key(key))
        if used:
            break
        await anyio.sleep(0.05)
    assert used


async def test_access_log_redacts_the_key(app, key):
    app.access.stream = io.StringIO()
    async with client_for(app) as c:
        await c.get(f"/accounts/?apiKey={key}&limit=5")
        await c.get(f"/accounts/?limit=5&APIKEY={key}")
        await c.get("/test", headers={"apiKey": key})
        await c.post("/accounts/create", json={"title": "x", "lang": "en"}, headers={"apiKey": key})
    app.access.flush()
    lines = app.access.stream.getvalue().splitlines()
    assert len(lines) == 4
    assert all(" INFO opensupp.access: 127.0.0.1 " in line for line in lines)
    assert all(key not in line for line in lines)
    assert '"GET /accounts/?apiKey=[redacted]&limit=5" 200' in lines[0]
    # only ``apiKey`` authenticates, but a key under any spelling is redacted
    assert '"GET /accounts/?limit=5&APIKEY=[redacted]" 401' in lines[1]
    assert '"POST /accounts/create" 200' in lines[3]


def test_access_log_writes_whole_lines_in_pipe_sized_chunks():
    from opensupp.web.accesslog import PIPE_BUF, AccessLog

    class Recorder(io.StringIO):
        writes: list[str] = []

        def write(self, text):
            self.writes.append(text)
            return super().write(text)

    log = AccessLog(stream=Recorder())
    for i in range(300):
        log.add("10.0.0.1", "GET", f"/accounts/{i}/get", 200, 120, 0.4, 7)
    log.flush()
    assert len(log.stream.getvalue().splitlines()) == 300
    assert all(len(w) <= PIPE_BUF and w.endswith("\n") for w in Recorder.writes)


async def test_access_log_lines_cannot_be_forged(app, key):
    app.access.stream = io.StringIO()
    async with client_for(app, key) as c:
        await c.get("/accounts/1%0A2026-01-01 INFO opensupp.access: forged/get")
        await c.get('/test?x=%22%0A"')
    app.access.flush()
    lines = app.access.stream.getvalue().splitlines()
    assert len(lines) == 2
    assert '"GET /accounts/1%0A2026-01-01%20INFO%20opensupp.access:%20forged/get" 404' in lines[0]


def test_logged_paths_escape_what_a_server_may_pass_through():
    from opensupp.web.asgi import App, Request

    req = Request(None, "GET", "/x\ny", b"", raw_path=b'/x\ny "z"')
    assert App._logged_path(req) == "/x\\x0ay\\x20\\x22z\\x22"
