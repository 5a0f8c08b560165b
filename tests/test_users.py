"""Users under an account: the guide's example, e-mail uniqueness, passwords."""

from __future__ import annotations

import logging
import re

import anyio
import pytest

from conftest import client_for, new_key
from opensupp.users.service import verify_user_password

pytestmark = pytest.mark.anyio

GUIDE_USER = b'{ "role": "agent", "email": "john@doe.com", "fullname": "John Doe", "password": "john.doe" }'


async def account(api, lang="en"):
    return (await api.post("/accounts/create", json={"title": "Acme", "lang": lang})).json()["id"]


def unique_email(tag="u"):
    import secrets

    return f"{tag}.{secrets.token_hex(5)}@example.com"


async def make_user(api, aid, **fields):
    body = {"email": unique_email(), "fullname": "Jane Roe", "password": "s3cret-pass", **fields}
    r = await api.post(f"/accounts/{aid}/users/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def test_guide_example(app, api):
    aid = await account(api)
    # The guide's address is fixed; other runs on this database may have taken it.
    async with app.db.transaction() as s:
        await s.execute("DELETE FROM users WHERE email_key = 'john@doe.com'")
    # Request POST: http://api.smartsupp.com/accounts/:aid/users/create
    r = await api.post(f"/accounts/{aid}/users/create", content=GUIDE_USER)
    assert r.status_code == 200
    user = r.json()
    # Response { "id": "3434", "role": "agent", "email": "john@doe.com",
    #            "fullname": "John Doe", "avatar": "", "note": "" }
    assert re.fullmatch(r"[1-9][0-9]*", user["id"])
    assert {k: user[k] for k in ("role", "email", "fullname", "avatar", "note")} == {
        "role": "agent", "email": "john@doe.com", "fullname": "John Doe", "avatar": "", "note": "",
    }
    assert "password" not in r.text and "argon2" not in r.text
    assert user["nickname"] == "John Doe" and user["lang"] == "en"
    assert await verify_user_password(app.db, user_id=int(user["id"]), password="john.doe")
    assert not await verify_user_password(app.db, user_id=int(user["id"]), password="john.doe!")


async def test_defaults(api):
    aid = await account(api, lang="cs")
    user = await make_user(api, aid)
    assert user["role"] == "agent" and user["nickname"] == "Jane Roe" and user["lang"] == "cs"
    assert (await make_user(api, aid, role="admin", nickname="J", lang="de"))["lang"] == "de"


async def test_crud_and_partial_update(app, api):
    aid = await account(api)
    user = await make_user(api, aid)
    assert (await api.get(f"/accounts/{aid}/users/{user['id']}/get")).json() == user
    assert (await api.get(f"/accounts/{aid}/users/")).json() == {"records": [user], "next": None}
    r = await api.post(f"/accounts/{aid}/users/{user['id']}/update", json={"nickname": "JR", "role": "admin"})
    assert r.json() == {**user, "nickname": "JR", "role": "admin"}
    r = await api.post(f"/accounts/{aid}/users/{user['id']}/update", json={"fullname": "Jane Q. Roe"})
    assert r.json()["nickname"] == "JR"  # independent of fullname after creation
    assert (await api.get(f"/accounts/{aid}/users/{user['id']}/delete")).status_code == 204
    assert (await api.get(f"/accounts/{aid}/users/{user['id']}/get")).status_code == 404


async def test_password_update_rehashes(app, api):
    aid = await account(api)
    user = await make_user(api, aid)
    async with app.db.read() as s:
        before = await s.fetchval("SELECT password_hash FROM users WHERE id = $1", int(user["id"]))
    r = await api.post(f"/accounts/{aid}/users/{user['id']}/update", json={"password": "another-pass"})
    assert r.status_code == 200 and "password" not in r.text
    async with app.db.read() as s:
        after = await s.fetchval("SELECT password_hash FROM users WHERE id = $1", int(user["id"]))
    assert before != after and after.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await verify_user_password(app.db, user_id=int(user["id"]), password="another-pass")


async def test_email_taken_in_any_case_is_409(app, api):
    aid = await account(api)
    email = unique_email("Mixed")
    await make_user(api, aid, email=email)
    other_aid = await account(api)
    async with client_for(app, await new_key(app)) as other:
        their_aid = await account(other)
        for client, a in ((api, aid), (api, other_aid), (other, their_aid)):
            r = await client.post(f"/accounts/{a}/users/create",
                                  json={"email": email.upper(), "fullname": "X", "password": "12345678"})
            assert r.status_code == 409
            assert r.json() == {
                "error": "Conflict", "message": f"The email {email.upper()} is already used by another user."
            }


async def test_email_change_to_a_taken_one_is_409_and_own_case_change_is_fine(api):
    aid = await account(api)
    a = await make_user(api, aid)
    b = await make_user(api, aid)
    r = await api.post(f"/accounts/{aid}/users/{b['id']}/update", json={"email": a["email"].upper()})
    assert r.status_code == 409
    r = await api.post(f"/accounts/{aid}/users/{a['id']}/update", json={"email": a["email"].upper()})
    assert r.status_code == 200 and r.json()["email"] == a["email"].upper()


async def test_twenty_concurrent_creates_one_email_one_wins(api):
    aid = await account(api)
    email = unique_email("race")
    codes = []

    async def create():
        r = await api.post(f"/accounts/{aid}/users/create",
                           json={"email": email, "fullname": "R", "password": "12345678"})
        codes.append(r.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(create)
    assert sorted(codes) == [200] + [409] * 19
    assert len((await api.get(f"/accounts/{aid}/users/")).json()["records"]) == 1


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"password": "short"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"role": "owner"}, "role"),
        ({"avatar": "javascript:alert(1)"}, "avatar"),
        ({"fullname": ""}, "fullname"),
        ({"fullname": None}, "fullname"),
        ({"lang": "xx"}, "lang"),
        ({"note": "a\x00b"}, "note"),
        ({"password": None}, "password"),
        ({"superuser": True}, "superuser"),
    ],
)
async def test_validation(api, fields, field):
    aid = await account(api)
    body = {"email": unique_email(), "fullname": "Jane", "password": "s3cret-pass", **fields}
    r = await api.post(f"/accounts/{aid}/users/create", json=body)
    assert r.status_code == 400
    assert field in {e["field"] for e in r.json()["errors"]}
    assert (await api.get(f"/accounts/{aid}/users/")).json()["records"] == []


@pytest.mark.parametrize("field", ["email", "password", "fullname", "role", "nickname", "avatar", "note", "lang"])
async def test_update_refuses_null(api, field):
    """An update's fields may be left out, never sent as null: null is no value of theirs."""
    aid = await account(api)
    user = await make_user(api, aid)
    r = await api.post(f"/accounts/{aid}/users/{user['id']}/update", json={field: None})
    assert r.status_code == 400
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert (await api.get(f"/accounts/{aid}/users/{user['id']}/get")).json() == user


async def test_note_may_span_lines(api):
    aid = await account(api)
    assert (await make_user(api, aid, note="line 1\n\tline 2"))["note"] == "line 1\n\tline 2"


async def test_password_is_never_logged(app, api, caplog):
    aid = await account(api)
    with caplog.at_level(logging.DEBUG):
        await make_user(api, aid, password="never-in-a-log-1")
        await api.post(f"/accounts/{aid}/users/create",
                       json={"email": "bad", "fullname": "x", "password": "never-in-a-log-2"})
    assert "never-in-a-log" not in caplog.text


async def test_scoping(app, api):
    aid = await account(api)
    other_aid = await account(api)
    user = await make_user(api, aid)
    # another of the partner's own accounts
    for r in (
        await api.get(f"/accounts/{other_aid}/users/{user['id']}/get"),
        await api.post(f"/accounts/{other_aid}/users/{user['id']}/update", json={"note": "x"}),
        await api.get(f"/accounts/{other_aid}/users/{user['id']}/delete"),
    ):
        assert r.status_code == 404
        assert r.json() == {"error": "NotFound", "message": f"No user {user['id']} in account {other_aid}."}
    assert (await api.get(f"/accounts/{other_aid}/users/")).json()["records"] == []
    # another partner
    async with client_for(app, await new_key(app)) as other:
        for r in (
            await other.get(f"/accounts/{aid}/users/"),
            await other.post(f"/accounts/{aid}/users/create",
                             json={"email": unique_email(), "fullname": "x", "password": "12345678"}),
        ):
            assert r.status_code == 404
            assert r.json() == {"error": "NotFound", "message": f"No account {aid}."}
        for r in (
            await other.get(f"/accounts/{aid}/users/{user['id']}/get"),
            await other.get(f"/accounts/{aid}/users/{user['id']}/delete"),
        ):
            assert r.status_code == 404
    assert (await api.get(f"/accounts/{aid}/users/{user['id']}/get")).json() == user


async def test_deleting_the_account_deletes_its_users(api):
    aid = await account(api)
    user = await make_user(api, aid)
    assert (await api.get(f"/accounts/{aid}/delete")).status_code == 204
    assert (await api.get(f"/accounts/{aid}/users/{user['id']}/get")).status_code == 404
    aid2 = await account(api)
    await make_user(api, aid2, email=user["email"])  # the login is free again


async def test_idempotent_user_create_replays(api):
    aid = await account(api)
    body = {"email": unique_email(), "fullname": "I", "password": "12345678"}
    h = {"Idempotency-Key": "user-1"}
    first = await api.post(f"/accounts/{aid}/users/create", json=body, headers=h)
    again = await api.post(f"/accounts/{aid}/users/create", json=body, headers=h)
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    other_path = await api.post(f"/accounts/{await account(api)}/users/create", json=body, headers=h)
    assert other_path.status_code == 422
