"""Deleting an account while its office hours, users, triggers, hooks and offline e-mails are
written: each write either lands before the delete (and goes with it) or answers 404; the
delete never fails, nothing answers 500, and no row is left under a deleted account."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from opensupp.db import parse_url

pytestmark = pytest.mark.anyio

ROUNDS = 10
TABLES = ("users", "triggers", "office_hours", "offline_emails", "hooks")
TRIGGER = {"name": "t", "actions": [{"name": "message", "agent_nick": "A", "message": "Hi"}]}
HOOK = {"name": "webhook", "config": {"url": "https://example.com/h"}}


def user() -> dict[str, str]:
    return {"email": f"race.{secrets.token_hex(6)}@example.com", "fullname": "R", "password": "12345678"}


def email() -> dict[str, str]:
    return {"email": f"o.{secrets.token_hex(6)}@example.com"}


async def account_with_children(api) -> tuple[int, dict[str, str]]:
    """An account with office hours, a user, a trigger, a hook and an offline e-mail already
    stored (so the race's updates and deletes change rows the delete's cascade must lock too),
    and their ids."""
    aid = (await api.post("/accounts/create", json={"title": "Race", "lang": "en"})).json()["id"]
    assert (await api.post(f"/accounts/{aid}/officehours/update", json={"active": True})).status_code == 200
    ids = {}
    for things, body in (("users", user()), ("triggers", TRIGGER), ("hooks", HOOK), ("offlineemails", email())):
        ids[things] = (await api.post(f"/accounts/{aid}/{things}/create", json=body)).json()["id"]
    return aid, ids


def writes(aid: int, ids: dict[str, str]) -> list[tuple[str, str, dict | None, dict]]:
    """Every kind of write under the account, as (method, path, body, headers)."""
    base = f"/accounts/{aid}"
    once = {"Idempotency-Key": secrets.token_hex(8)}
    batch = {"requests": [  # one shared transaction (no password to hash)
        {"method": "POST", "url": f"{base}/offlineemails/create", "body": email()},
        {"method": "POST", "url": f"{base}/triggers/create", "body": TRIGGER},
        {"method": "POST", "url": f"{base}/officehours/update", "body": {"days": [1, 2]}},
    ]}
    return [
        ("POST", f"{base}/officehours/update", {"timezone": 2}, {}),
        ("POST", f"{base}/officehours/update", {"active": False}, {}),
        ("POST", f"{base}/users/create", user(), {}),
        ("POST", f"{base}/users/{ids['users']}/update", {"fullname": "Renamed"}, {}),
        ("POST", f"{base}/triggers/create", TRIGGER, once),
        ("POST", f"{base}/triggers/{ids['triggers']}/update", {"name": "renamed"}, {}),
        ("POST", f"{base}/hooks/create", HOOK, {}),
        ("POST", f"{base}/hooks/{ids['hooks']}/update", {"active": False}, {}),
        ("POST", f"{base}/offlineemails/create", email(), {"Idempotency-Key": secrets.token_hex(8)}),
        ("GET", f"{base}/offlineemails/{ids['offlineemails']}/delete", None, {}),
        ("POST", f"{base}/officehours/update", {"days": [3]}, {}),
        ("POST", "/batch", batch, {}),
    ]


async def race(api, aid: int, ids: dict[str, str]) -> tuple[int, list[tuple[str, int, dict | None]]]:
    """The writes and the account's delete, concurrently: the delete's status, and each
    write's (path, status, body)."""
    async def write(method: str, path: str, body: dict | None, headers: dict) -> tuple[str, int, dict | None]:
        r = await api.request(method, path, json=body, headers=headers)
        return path, r.status_code, r.json() if r.content else None

    tasks = [asyncio.ensure_future(write(*call)) for call in writes(aid, ids)]
    await asyncio.sleep(0)  # the writes start first, the delete lands among them
    delete = await api.get(f"/accounts/{aid}/delete")
    return delete.status_code, await asyncio.gather(*tasks)


def check_answer(aid: int, path: str, status: int, body: dict | None) -> None:
    """A write either landed (200, 204) or found the account, or its row, gone (404)."""
    if path == "/batch":
        assert status == 200, body
        for call in body["responses"]:
            check_answer(aid, "batch call", call["status"], call["body"])
        return
    assert status in (200, 204, 404), (path, status, body)
    if status == 404:
        assert body["error"] == "NotFound", body
        assert body["message"].endswith(f"{aid}."), body


async def test_delete_racing_writes_under_the_account(app, api):
    deleted = []
    for _ in range(ROUNDS):
        aid, ids = await account_with_children(api)
        delete_status, answers = await race(api, aid, ids)
        assert delete_status == 204
        deleted.append(int(aid))
        for path, status, body in answers:
            check_answer(aid, path, status, body)
        assert (await api.get(f"/accounts/{aid}/get")).status_code == 404
    gone = ", ".join(map(str, deleted))
    async with app.db.read() as s:
        for table in TABLES:
            assert await s.fetchval(f"SELECT count(*) FROM {table} WHERE account_id IN ({gone})") == 0, table


# ----------------------------------------------------------------------------- a detected deadlock


async def wait_until_waited_for(conn: asyncpg.Connection) -> None:
    """Until another backend waits for ``conn``'s transaction (for a row it changed)."""
    for _ in range(500):
        if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
                               " AND transactionid = xid(pg_current_xact_id())"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nothing waited for the transaction")


@pytest.mark.parametrize("deadlocks, status", [(1, 204), (2, 409)])
async def test_a_delete_rolled_back_by_a_deadlock_runs_once_more(app, api, database_url, deadlocks, status):
    """Another program's transaction holds a user row, and then asks for the account row that
    the account's delete holds while its cascade waits for that user row. PostgreSQL rolls the
    delete back (it waited first, so its backend detects the deadlock, after deadlock_timeout,
    1 s) and the edge runs it once more: 204 once the other transaction ends. Rolled back
    twice, it answers 409 and the account is left as it was."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one writer at a time: nothing to deadlock")
    aid, ids = await account_with_children(api)
    uid = ids["users"]
    other = await asyncpg.connect(parse_url(database_url)[1])
    try:
        async with other.transaction():
            await other.execute("UPDATE users SET fullname = 'held' WHERE id = $1", int(uid))
            delete = asyncio.ensure_future(api.get(f"/accounts/{aid}/delete"))
            for n in range(deadlocks):
                await wait_until_waited_for(other)  # the delete's cascade, for the user row
                savepoint = other.transaction()
                await savepoint.start()
                # answers once the delete was rolled back (deadlock detected)
                await other.execute("SELECT 1 FROM accounts WHERE id = $1 FOR KEY SHARE", int(aid))
                if n < deadlocks - 1:
                    await savepoint.rollback()  # lets the delete's second run take the account row
                else:
                    await savepoint.commit()
        r = await delete
    finally:
        await other.close()
    assert r.status_code == status, r.text
    if status == 204:
        assert (await api.get(f"/accounts/{aid}/get")).status_code == 404
    else:
        assert r.json() == {"error": "Conflict", "message": "The request collided with concurrent ones and was "
                                                            "rolled back; nothing was written. Send it again."}
        assert (await api.get(f"/accounts/{aid}/users/{uid}/get")).json()["fullname"] == "held"
