"""API keys: where they may come from, how they are stored, how they stop working."""

from __future__ import annotations

import io
import secrets
import socket

import anyio
import httpx
import pytest

from conftest import cli_key, client_for, new_key
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
            used = await session.fetchval(
                "SELECT last_used_at FROM api_keys WHERE key_hash = $1", partners.hash_key(key)
            )
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


# --------------------------------------------------------------------------- failed authentication


async def insert_key(app, key: str) -> None:
    """``key`` stored for a new partner straight in the table, as another process would."""
    async with app.db.transaction() as session:
        partner_id = await partners.create_partner(session, name=f"direct-{key[-8:]}")
        await session.execute(
            "INSERT INTO api_keys (partner_id, name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            partner_id, "direct", key[:12], partners.hash_key(key), 1)


async def started(database_url, **settings):
    app = create_app(Settings(database_url=database_url, key_cache_seconds=0, **settings))
    await app.startup()
    return app


def client_from(app, address: str, key: str | None = None):
    headers = {"apiKey": key} if key else {}
    transport = httpx.ASGITransport(app=app, client=(address, 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://api.test", headers=headers)


async def test_a_bad_key_repeated_costs_no_query_until_its_miss_expires(database_url):
    app = await started(database_url, key_miss_cache_seconds=0.5)
    key = "osk_" + secrets.token_urlsafe(32)
    try:
        async with client_for(app, key) as c:
            assert (await c.get("/test")).status_code == 401
            await insert_key(app, key)
            # the database has it now; the process does not ask until the miss expires
            r = await c.get("/test")
            assert r.status_code == 401
            assert r.json() == {"error": "AuthError", "message": f"No account found for apiKey {key}."}
            await anyio.sleep(0.6)
            assert (await c.get("/test")).status_code == 200
    finally:
        await app.shutdown()


async def test_failures_are_limited_per_client_address(database_url):
    app = await started(database_url, auth_failures_per_minute=3)
    good = await new_key(app)
    try:
        async with client_from(app, "10.0.0.1", "osk_wrong") as c, client_from(app, "10.0.0.2", "osk_wrong") as other:
            for _ in range(3):
                assert (await c.get("/test", headers={"apiKey": good})).status_code == 200  # successes cost nothing
                assert (await c.get("/test")).status_code == 401
            r = await c.get("/test")
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) == 20  # 3 a minute: one every 20 s
            assert r.json() == {"error": "RateLimited", "message": (
                "Too many failed authentications from 10.0.0.1: at most 3 a minute per address; "
                "check the apiKey, and retry in 20 s.")}
            assert (await c.get("/test", params={"apiKey": "osk_other"})).status_code == 429
            assert (await other.get("/test")).status_code == 401  # another address has its own budget
            # a key this process has accepted still works from there; one it has not is not looked up
            assert (await c.get("/test", headers={"apiKey": good})).status_code == 200
            fresh = await new_key(app)
            assert (await c.get("/test", headers={"apiKey": fresh})).status_code == 429
            assert (await other.get("/test", headers={"apiKey": fresh})).status_code == 200
            assert (await c.get("/test", headers={"apiKey": fresh})).status_code == 200
            assert (await c.get("/test", headers={"apiKey": ""})).status_code == 401  # no key: no lookup, no 429
    finally:
        await app.shutdown()


async def test_the_failure_budget_refills(database_url):
    app = await started(database_url, auth_failures_per_minute=120)  # one every 0.5 s
    try:
        async with client_from(app, "10.0.0.3", "osk_wrong") as c:
            statuses = [(await c.get("/test")).status_code for _ in range(121)]
            assert statuses == [401] * 120 + [429]
            assert (await c.get("/test")).headers["retry-after"] == "1"
            await anyio.sleep(0.6)
            assert (await c.get("/test")).status_code == 401
            assert (await c.get("/test")).status_code == 429
    finally:
        await app.shutdown()


async def test_a_batch_is_one_failure(database_url):
    app = await started(database_url, auth_failures_per_minute=2)
    calls = {"requests": [{"method": "GET", "url": "/test"} for _ in range(5)]}
    try:
        async with client_from(app, "10.0.0.4", "osk_wrong") as c:
            assert (await c.post("/batch", json=calls)).status_code == 401
            assert (await c.get("/test")).status_code == 401
            assert (await c.post("/batch", json=calls)).status_code == 429
    finally:
        await app.shutdown()


def test_ipv6_clients_share_a_budget_per_64():
    from opensupp.web.auth import client_address

    assert client_address(("2001:db8:1:2:aaaa::1", 1)) == client_address(("2001:db8:1:2:bbbb::9", 1)) \
        == "2001:db8:1:2::/64"
    assert client_address(("2001:db8:1:3::1", 1)) == "2001:db8:1:3::/64"
    assert client_address(("::ffff:192.0.2.7", 1)) == "192.0.2.7"
    assert client_address(("192.0.2.7", 1)) == "192.0.2.7"
    assert client_address(None) == "-"


def test_the_key_cache_drops_the_least_recently_used_key():
    from opensupp.web.auth import KeyCache

    cache = KeyCache(ttl=60, size=3)
    principals = {k: partners.Principal(partner_id=i, key_id=i) for i, k in enumerate([b"a", b"b", b"c", b"d"])}
    for k in (b"a", b"b", b"c"):
        cache.put(k, principals[k])
    assert cache.get(b"a") == principals[b"a"]  # a is now the most recently used
    cache.put(b"d", principals[b"d"])
    assert [cache.get(k) for k in (b"a", b"b", b"c", b"d")] == [
        principals[b"a"], None, principals[b"c"], principals[b"d"]
    ]


# --------------------------------------------------------------------------- the key never reaches a log


def spellings() -> list[str]:
    """Every name the query parser decodes to ``apiKey``: each letter plain or percent-escaped
    (2^6), the escapes' hex digits in lower case for even masks and upper case for odd ones
    (the K: %4b and %4B both come up)."""
    names = []
    for mask in range(64):
        name = ""
        for i, letter in enumerate("apiKey"):
            escaped = f"%{ord(letter):02x}"
            name += (escaped.upper() if mask % 2 else escaped) if mask >> i & 1 else letter
        names.append(name)
    return names


def test_the_key_is_redacted_whatever_its_spelling(env, live):
    key = cli_key(env)
    encoded = "".join(f"%{b:02X}" for b in key.encode())
    queries = [f"{name}={key}" for name in spellings()]
    queries += [f"apiKey=osk_wrong&%61piKey={key}", f"apiKey={key}&limit=1&APIKEY={key}", f"apiKey={encoded}",
                f"apiKey={encoded.lower()}", f"%61pi%4Bey={encoded}&x=1"]
    with httpx.Client(base_url=live.url) as c:
        for query in queries:
            assert c.get(f"/test?{query}").status_code == 200, query
        batch = {"requests": [{"method": "GET", "url": f"/accounts/?{name}={key}&limit=1"} for name in spellings()[:8]]
                 + [{"method": "GET", "url": f"/accounts/?apiKey={encoded}"}]}
        r = c.post("/batch", json=batch, headers={"apiKey": key})
        assert [call["status"] for call in r.json()["responses"]] == [200] * 9
        # a request the HTTP parser refuses: uvicorn logs a warning, without the URL
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(f"GET /test?%61piKey={key} HTTP/1.1\r\nHost: x\r\nBad header\r\n\r\n".encode())
            assert raw.recv(65536).startswith(b"HTTP/1.1 400 ")
        assert c.get("/test?last=1", headers={"apiKey": key}).status_code == 200
    log = live.log_after('"GET /test?last=1" 200')
    assert "Invalid HTTP request received." in log
    assert key not in log
    assert key[4:] not in log and encoded not in log and encoded.lower() not in log
    assert log.count("=[redacted]") == len(queries) + 2 + 9  # two queries have two keys
    assert '"GET /test?%61piKey=[redacted]" 200' in log
    assert '"GET /test?apiKey=osk_wrong&%61piKey=[redacted]" 200' not in log  # osk_wrong is redacted too
    assert '"GET /test?apiKey=[redacted]&%61piKey=[redacted]" 200' in log
    assert '"GET /accounts/?%61piKey=[redacted]&limit=1" 200' in log  # a batch call's line


def test_redaction_keeps_the_rest_as_sent():
    from opensupp.web.auth import redact_query

    assert redact_query(b"limit=5&after=AAAAAAAAAAA") == "limit=5&after=AAAAAAAAAAA"
    assert redact_query(b"a=%41&b=%ZZ&c") == "a=%41&b=%ZZ&c"
    assert redact_query(b"x=1&%61pi%4bey=s3cret&y=%20") == "x=1&%61pi%4bey=[redacted]&y=%20"
    assert redact_query(b"+apiKey=s3cret&apiKey") == "+apiKey=[redacted]&apiKey=[redacted]"
    assert redact_query(b"apiKey%3Ds3cret&z=2") == "[redacted]&z=2"
