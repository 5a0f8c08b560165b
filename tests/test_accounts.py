"""Accounts through the PHP wrapper's URL grammar: CRUD, partial updates, validation."""

from __future__ import annotations

import pytest

from conftest import client_for, new_key

pytestmark = pytest.mark.anyio

ACCOUNT = {"title": "Acme s.r.o.", "lang": "cs"}


async def create(api, **fields):
    r = await api.post("/accounts/create", json={**ACCOUNT, **fields})
    assert r.status_code == 200, r.text
    return r.json()


async def test_crud_round_trip(api):
    a = await create(api)
    assert (await api.get(f"/accounts/{a['id']}/get")).json() == a

    r = await api.post(f"/accounts/{a['id']}/update", json={"title": "Acme a.s."})
    assert r.status_code == 200
    assert r.json() == {**a, "title": "Acme a.s."}
    assert (await api.get(f"/accounts/{a['id']}/get")).json() == {**a, "title": "Acme a.s."}

    r = await api.get(f"/accounts/{a['id']}/delete")
    assert r.status_code == 204
    assert r.content == b""
    r = await api.get(f"/accounts/{a['id']}/get")
    assert r.status_code == 404
    assert r.json() == {"error": "NotFound", "message": f"No account {a['id']}."}
    assert (await api.get(f"/accounts/{a['id']}/delete")).status_code == 404


async def test_account_keys_are_unique_hex_and_never_change(api):
    accounts = [await create(api) for _ in range(20)]
    keys = {a["accountKey"] for a in accounts}
    assert len(keys) == 20
    a = accounts[0]
    r = await api.post(f"/accounts/{a['id']}/update", json={"lang": "de"})
    assert r.json()["accountKey"] == a["accountKey"]


@pytest.mark.parametrize(
    "path",
    ["/accounts/{id}/get", "/accounts/{id}/get/", "//accounts/{id}/get", "//accounts/{id}/get/"],
)
async def test_slashes_never_redirect(api, path):
    a = await create(api)
    r = await api.get("http://api.test" + path.format(id=a["id"]))  # full URL: "//x" alone is a host
    assert r.status_code == 200
    assert r.json() == a


@pytest.mark.parametrize("path", ["/accounts", "/accounts/", "//accounts/", "/accounts//"])
async def test_list_paths(api, path):
    a = await create(api)
    r = await api.get("http://api.test" + path)
    assert r.status_code == 200
    assert r.json() == {"records": [a], "next": None}


@pytest.mark.parametrize("path", ["/accounts/create", "/accounts/create/", "//accounts/create"])
async def test_create_paths(api, path):
    r = await api.post("http://api.test" + path, json=ACCOUNT)
    assert r.status_code == 200


async def test_get_to_create_is_an_empty_post(api):
    """The PHP wrapper sends a GET when its parameters are empty."""
    r = await api.get("/accounts/create")
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "ValidationError"
    assert {e["field"] for e in body["errors"]} == {"title", "lang"}
    assert all(e["message"] == "is required" for e in body["errors"])


async def test_get_to_update_answers_the_unchanged_account(api):
    a = await create(api)
    r = await api.get(f"/accounts/{a['id']}/update")
    assert r.status_code == 200
    assert r.json() == a


@pytest.mark.parametrize("body", [b"", b"   ", b"{}"])
async def test_empty_update_answers_the_unchanged_account(api, body):
    a = await create(api)
    r = await api.post(f"/accounts/{a['id']}/update", content=body)
    assert r.status_code == 200
    assert r.json() == a


async def test_read_only_fields_sent_back_unchanged_are_ignored(api):
    a = await create(api)
    r = await api.post(f"/accounts/{a['id']}/update", json={**a, "title": "New"})
    assert r.status_code == 200
    assert r.json() == {**a, "title": "New"}
    r = await api.post(f"/accounts/{a['id']}/update", json={"id": int(a["id"])})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "field,value",
    [("id", "999999"), ("accountKey", "0" * 40), ("createdAt", "2000-01-01T00:00:00Z")],
)
async def test_changing_a_read_only_field_is_refused(api, field, value):
    a = await create(api)
    r = await api.post(f"/accounts/{a['id']}/update", json={field: value, "title": "Changed"})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {"field": field, "message": f"is read-only; it is {a[field]!r} and cannot be changed"}
    ]
    assert (await api.get(f"/accounts/{a['id']}/get")).json() == a  # nothing half-written


@pytest.mark.parametrize(
    "body,field,message",
    [
        ({"lang": "en"}, "title", "is required"),
        ({"title": "x"}, "lang", "is required"),
        ({"title": "", "lang": "en"}, "title", "must not be empty"),
        ({"title": "   ", "lang": "en"}, "title", "must not be blank"),
        ({"title": "x" * 256, "lang": "en"}, "title", "must be at most 255 characters"),
        ({"title": "a\x00b", "lang": "en"}, "title", "must not contain control characters"),
        ({"title": "a\nb", "lang": "en"}, "title", "must not contain control characters"),
        ({"title": 12, "lang": "en"}, "title", "must be a string"),
        ({"title": None, "lang": "en"}, "title", "must be a string"),
        ({"title": ["x"], "lang": "en"}, "title", "must be a string"),
        ({"title": "x", "lang": "EN"}, "lang", None),
        ({"title": "x", "lang": "xx"}, "lang", None),
        ({"title": "x", "lang": "en", "titel": "y"}, "titel", "is not a known field (allowed: title, lang)"),
    ],
)
async def test_create_validation(api, body, field, message):
    r = await api.post("/accounts/create", json=body)
    assert r.status_code == 400
    payload = r.json()
    assert payload["error"] == "ValidationError"
    errors = {e["field"]: e["message"] for e in payload["errors"]}
    assert field in errors
    if message:
        assert errors[field] == message
    else:
        assert errors[field].startswith("must be a supported language code, one of: en, cs")
    assert field in payload["message"]
    assert (await api.get("/accounts/")).json()["records"] == []


async def test_every_bad_field_is_named_at_once(api):
    r = await api.post("/accounts/create", json={"title": "", "lang": "zz", "x": 1, "y": 2})
    assert r.status_code == 400
    assert {e["field"] for e in r.json()["errors"]} == {"title", "lang", "x", "y"}


async def test_title_counts_code_points(api):
    assert (await api.post("/accounts/create", json={"title": "ž" * 255, "lang": "cs"})).status_code == 200
    assert (await api.post("/accounts/create", json={"title": "😀" * 255, "lang": "cs"})).status_code == 200
    assert (await api.post("/accounts/create", json={"title": "😀" * 256, "lang": "cs"})).status_code == 400


async def test_update_validation_changes_nothing(api):
    a = await create(api)
    r = await api.post(f"/accounts/{a['id']}/update", json={"title": "ok", "lang": "xx"})
    assert r.status_code == 400
    assert (await api.get(f"/accounts/{a['id']}/get")).json() == a


@pytest.mark.parametrize("field", ["title", "lang"])
async def test_update_refuses_null(api, field):
    """A field left out keeps its value; a field sent as null is refused (null is no title)."""
    a = await create(api)
    r = await api.post(f"/accounts/{a['id']}/update", json={field: None})
    assert r.status_code == 400
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert (await api.get(f"/accounts/{a['id']}/get")).json() == a


@pytest.mark.parametrize("raw_id", ["0012", "-1", "abc", "1.0", "99999999999999999999", "1e3", "0", "%31", "1%00"])
async def test_non_canonical_ids_are_404(api, raw_id):
    a = await create(api)
    for verb in ("get", "delete", "update"):
        r = await api.get(f"/accounts/{raw_id}/{verb}")
        assert r.status_code == 404, (raw_id, verb, r.text)
        assert r.json()["error"] == "NotFound"
    assert (await api.get(f"/accounts/{a['id']}/get")).status_code == 200


async def test_largest_canonical_id_is_a_plain_404(api):
    r = await api.get("/accounts/999999999999999999/get")
    assert r.status_code == 404
    assert r.json() == {"error": "NotFound", "message": "No account 999999999999999999."}


async def test_numeric_string_title_stays_a_string(api):
    a = await create(api, title="60")
    assert a["title"] == "60"


async def test_tenant_isolation_for_every_verb(app, api):
    mine = await create(api)
    other_key = await new_key(app)
    async with client_for(app, other_key) as other:
        theirs = (await other.post("/accounts/create", json=ACCOUNT)).json()
        missing = 10**17
        for account_id in (mine["id"], missing):
            expected = {"error": "NotFound", "message": f"No account {account_id}."}
            for r in (
                await other.get(f"/accounts/{account_id}/get"),
                await other.post(f"/accounts/{account_id}/update", json={"title": "stolen"}),
                await other.get(f"/accounts/{account_id}/update"),
                await other.get(f"/accounts/{account_id}/delete"),
            ):
                assert r.status_code == 404
                assert r.json() == expected
        assert (await other.get("/accounts/")).json()["records"] == [theirs]
    assert (await api.get(f"/accounts/{mine['id']}/get")).json() == mine
    assert (await api.get("/accounts/")).json()["records"] == [mine]


async def test_deleting_an_account_deletes_everything_under_it(app, api):
    import secrets

    a = await create(api)
    aid = a["id"]
    user = {"email": f"cascade.{secrets.token_hex(4)}@example.com", "fullname": "C", "password": "12345678"}
    assert (await api.post(f"/accounts/{aid}/users/create", json=user)).status_code == 200
    trigger = {"name": "t", "actions": [{"name": "message", "agent_nick": "A", "message": "Hi"}]}
    assert (await api.post(f"/accounts/{aid}/triggers/create", json=trigger)).status_code == 200
    assert (await api.post(f"/accounts/{aid}/officehours/update", json={"active": True})).status_code == 200
    assert (await api.post(f"/accounts/{aid}/offlineemails/create", json={"email": "o@example.com"})).status_code == 200
    hook = {"name": "webhook", "config": {"url": "https://example.com/h"}}
    assert (await api.post(f"/accounts/{aid}/hooks/create", json=hook)).status_code == 200

    assert (await api.get(f"/accounts/{aid}/delete")).status_code == 204
    async with app.db.read() as s:
        for table in ("users", "triggers", "office_hours", "offline_emails", "hooks"):
            assert await s.fetchval(f"SELECT count(*) FROM {table} WHERE account_id = $1", int(aid)) == 0, table
    for path in ("users/", "triggers/", "offlineemails/", "hooks/", "officehours/get"):
        assert (await api.get(f"/accounts/{aid}/{path}")).status_code == 404
