"""Every row of API.md's error table, and the order in which the checks happen."""

from __future__ import annotations

import logging

import pytest

from conftest import client_for
from opensupp.app import create_app
from opensupp.config import Settings

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
GUIDE_OFFICE_HOURS = (
    b'{ "active": true "days": [1,2,6,0], "timezone": 1, "config": [{ "dow": 1, "times": '
    b'[ { "from": 480, "to": 705 }, { "from": 780, "to": 1020 } ] }, { "dow": 2, "times": '
    b'[ { "from": 480, "to": 705 } ] }] }'
)


def error_of(r, status, error):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    return body


# ----------------------------------------------------------------------------- 400 InvalidJSON


async def test_missing_comma_names_line_and_column(api):
    body = error_of(await api.post("/accounts/create", content=GUIDE_OFFICE_HOURS), 400, "InvalidJSON")
    assert "line 1, column 18" in body["message"]


async def test_multiline_position(api):
    r = await api.post("/accounts/create", content=b'{\n  "title": "x",\n  "lang": en\n}')
    body = error_of(r, 400, "InvalidJSON")
    assert "line 3, column 11" in body["message"]


async def test_invalid_utf8_names_its_position(api):
    r = await api.post("/accounts/create", content=b'{"title": "ab\xff", "lang": "en"}')
    body = error_of(r, 400, "InvalidJSON")
    assert "invalid UTF-8 at line 1, column 14" in body["message"]


@pytest.mark.parametrize(
    "content,kind",
    [(b"[1, 2]", "an array"), (b'"x"', "a string"), (b"12", "a number"), (b"true", "a boolean"), (b"null", "null")],
)
async def test_body_must_be_an_object(api, content, kind):
    body = error_of(await api.post("/accounts/create", content=content), 400, "InvalidJSON")
    assert body["message"] == f"Request body must be a JSON object, not {kind} (line 1, column 1)."


@pytest.mark.parametrize(
    "content", [b'{"title": 1e400, "lang": "en"}', b'{"title": "x", "lang": "en"', b"\x00", b'{"a": "\\ud800"}']
)
async def test_unparseable_bodies(api, content):
    error_of(await api.post("/accounts/create", content=content), 400, "InvalidJSON")


async def test_body_is_json_whatever_the_content_type(api):
    r = await api.post("/accounts/create", content=b'{"title": "x", "lang": "en"}',
                       headers={"content-type": "text/plain"})
    assert r.status_code == 200


# ----------------------------------------------------------------------------- 400 ValidationError


async def test_validation_error_shape(api):
    body = error_of(await api.post("/accounts/create", json={"title": 5}), 400, "ValidationError")
    assert body["errors"] == [
        {"field": "title", "message": "must be a string"},
        {"field": "lang", "message": "is required"},
    ]
    assert body["message"] == "Invalid request: title: must be a string; lang: is required."


@pytest.mark.parametrize("value", [12345678901234567890123, -(10**30), 1.5])
async def test_huge_numbers_are_400(api, value):
    r = await api.post("/accounts/create", json={"title": value, "lang": "en"})
    assert r.status_code == 400


async def test_nul_in_a_string_is_400(api):
    error_of(await api.post("/accounts/create", content=b'{"title": "a\\u0000", "lang": "en"}'), 400, "ValidationError")


# ----------------------------------------------------------------------------- 401


async def test_no_key(anon):
    for r in (await anon.get("/test"), await anon.get("/accounts/"), await anon.get("/test", headers={"apiKey": ""}),
              await anon.get("/test?apiKey=")):
        assert error_of(r, 401, "AuthError")["message"] == "No apiKey given."


async def test_unknown_key_is_echoed_bounded(anon):
    r = await anon.get("/test", headers={"apiKey": "k" * 500})
    message = error_of(r, 401, "AuthError")["message"]
    assert message == f"No account found for apiKey {'k' * 64}...."


# ----------------------------------------------------------------------------- 404, 405


@pytest.mark.parametrize("path", ["/nope", "/accounts/1/nope", "/accounts/1/users/x", "/officehours/"])
async def test_unknown_paths(api, path):
    error_of(await api.get(path), 404, "NotFound")
    error_of(await api.post(path, json={}), 404, "NotFound")


@pytest.mark.parametrize(
    "path,allow",
    [("/accounts/create", "GET, POST"), ("/accounts/1/update", "GET, POST"), ("/accounts/1/get", "GET"),
     ("/accounts/", "GET"), ("/accounts/1/delete", "GET"), ("/test", "GET")],
)
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def test_other_methods_are_405_with_allow(api, path, allow, method):
    r = await api.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    if method != "HEAD":
        assert r.json()["error"] == "MethodNotAllowed"


@pytest.mark.parametrize("path", ["/accounts/1/get", "/accounts/", "/accounts/1/delete", "/test"])
async def test_post_to_a_get_path_is_405(api, path):
    r = await api.post(path, json={})
    assert error_of(r, 405, "MethodNotAllowed")
    assert r.headers["allow"] == "GET"


# ----------------------------------------------------------------------------- 409


async def test_conflict_is_409(api):
    import secrets

    aid = (await api.post("/accounts/create", json={"title": "x", "lang": "en"})).json()["id"]
    user = {"email": f"taken.{secrets.token_hex(4)}@example.com", "fullname": "T", "password": "12345678"}
    assert (await api.post(f"/accounts/{aid}/users/create", json=user)).status_code == 200
    body = error_of(await api.post(f"/accounts/{aid}/users/create", json=user), 409, "Conflict")
    assert body["message"] == f"The email {user['email']} is already used by another user."


# ----------------------------------------------------------------------------- 413


async def test_one_mib_passes_one_more_byte_is_413(api):
    pad = MIB - len(b'{"title": "x", "lang": "en", "p": ""}')
    exact = b'{"title": "x", "lang": "en", "p": "' + b"a" * pad + b'"}'
    assert len(exact) == MIB
    r = await api.post("/accounts/create", content=exact)
    body = error_of(r, 400, "ValidationError")  # read in full, then refused for its unknown field
    assert body["errors"] == [{"field": "p", "message": "is not a known field (allowed: title, lang)"}]
    r = await api.post("/accounts/create", content=exact[:-2] + b'a"}')
    assert len(r.request.content) == MIB + 1
    assert error_of(r, 413, "PayloadTooLarge")["message"] == "Request body is over 1 MiB (1048576 bytes)."


async def test_chunked_body_over_1_mib_is_413(api):
    async def chunks():
        for _ in range(17):
            yield b" " * 65536

    r = await api.post("/accounts/create", content=chunks())
    assert "content-length" not in r.request.headers
    error_of(r, 413, "PayloadTooLarge")


async def test_413_comes_before_401(anon):
    error_of(await anon.post("/accounts/create", content=b" " * (MIB + 1)), 413, "PayloadTooLarge")


async def test_401_comes_before_404_and_405(anon):
    # within the API's paths; any other path is the web pages' (tests/test_site.py: 404 without a key)
    error_of(await anon.get("/accounts/nope"), 401, "AuthError")
    error_of(await anon.put("/accounts/create"), 401, "AuthError")


async def test_405_comes_before_400(api):
    r = await api.put("/accounts/create", content=b"{not json")
    error_of(r, 405, "MethodNotAllowed")


# ----------------------------------------------------------------------------- 422: see test_idempotency.py
# ----------------------------------------------------------------------------- 429


async def test_rate_limit_answers_429_with_retry_after(database_url, key):
    app = create_app(Settings(database_url=database_url, key_cache_seconds=0, rate_limit=1, rate_burst=2))
    await app.startup()
    try:
        async with client_for(app, key) as c:
            assert (await c.get("/test")).status_code == 200
            assert (await c.get("/test")).status_code == 200
            r = await c.get("/test")
            body = error_of(r, 429, "RateLimited")
            assert r.headers["retry-after"] == "1"
            assert "1 per second" in body["message"]
    finally:
        await app.shutdown()


# ----------------------------------------------------------------------------- 500


async def test_server_error_hides_internals(app, api, caplog):
    await app.db.close()  # the database goes away under a running server
    with caplog.at_level(logging.ERROR, logger="opensupp"):
        r = await api.get("/accounts/1/get")
    body = error_of(r, 500, "ServerError")
    assert body["message"].startswith("Internal server error (error id ")
    assert "Traceback" not in r.text and "sqlite" not in r.text.lower() and "asyncpg" not in r.text.lower()
    error_id = body["message"].split("error id ")[1].rstrip(").")
    assert any(error_id in rec.getMessage() and rec.exc_info for rec in caplog.records)
    await app.db.open()
