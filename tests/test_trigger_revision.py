"""triggers.version (migration 0003): a row's version grows with each update, ids are never
reused, so what an account's triggers are at can be told from (id, version) pairs. The
tests watch (count, max id, sum of versions) move with every write.

The evaluate cache's key (triggers/service.py) is accounts.triggers_revision on SQLite,
which the database increments with each write to the account's triggers (migration 0004),
and "id.version,..." on PostgreSQL. The last tests hold both to what the cache relies on:
the key read with the account is the key of the rows the plan is built from; equal keys
are equal triggers; every write that changes the triggers changes the key."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest

from conftest import client_for, new_key
from opensupp.partners import service as partners

pytestmark = pytest.mark.anyio

SIMPLE = {"name": "Hi", "actions": [{"name": "message", "agent_nick": "Ann", "message": "Hello!"}]}
FINGERPRINT_SQL = "SELECT count(*), max(id), sum(version) FROM triggers WHERE account_id = $1"
API_FIELDS = ["id", "active", "name", "description", "event", "only_once", "constraints", "conditions", "actions"]


async def account(api) -> str:
    r = await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def raw_fingerprint(app, aid: str) -> tuple:
    async with app.db.read() as s:
        return tuple(await s.fetchrow(FINGERPRINT_SQL, int(aid)))


async def fingerprint(app, aid: str) -> tuple[int, int | None, int | None]:
    """The fingerprint as plain ints: PostgreSQL's sum() of a bigint is a numeric (Decimal)."""
    count, max_id, total = await raw_fingerprint(app, aid)
    return count, max_id, None if total is None else int(total)


async def version(app, tid: str) -> int:
    async with app.db.read() as s:
        return await s.fetchval("SELECT version FROM triggers WHERE id = $1", int(tid))


async def create_trigger(api, aid: str, **changes) -> dict:
    r = await api.post(f"/accounts/{aid}/triggers/create", json={**SIMPLE, **changes})
    assert r.status_code == 200, r.text
    return r.json()


async def update_trigger(api, aid: str, tid: str, **changes) -> dict:
    r = await api.post(f"/accounts/{aid}/triggers/{tid}/update", json=changes)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_new_account_has_no_triggers_on_either_database(app, api):
    aid = await account(api)
    # the same on both databases: count(*) is 0, max() and sum() over no rows are NULL
    assert await raw_fingerprint(app, aid) == (0, None, None)
    assert await fingerprint(app, aid) == (0, None, None)


async def test_sum_of_versions_is_numeric_on_postgres_and_an_int_on_sqlite(app, api, database_url):
    aid = await account(api)
    t = await create_trigger(api, aid)
    count, max_id, total = await raw_fingerprint(app, aid)
    assert (count, max_id) == (1, int(t["id"]))
    if database_url.startswith("sqlite"):
        assert type(total) is int and total == 0
    else:
        assert type(total) is Decimal and total == 0
    assert await fingerprint(app, aid) == (1, int(t["id"]), 0)


async def test_create_update_delete_each_change_it_and_only_for_that_account(app, api):
    aid, other = await account(api), await account(api)
    await create_trigger(api, other)
    other_before = await fingerprint(app, other)
    seen = [await fingerprint(app, aid)]

    t = await create_trigger(api, aid)
    assert await version(app, t["id"]) == 0
    seen.append(await fingerprint(app, aid))
    assert seen[-1] == (1, int(t["id"]), 0)

    second = await create_trigger(api, aid, name="second")
    seen.append(await fingerprint(app, aid))
    assert seen[-1] == (2, int(second["id"]), 0)

    # every update with a real change bumps the trigger's version by exactly 1
    for i, changes in enumerate([{"active": False}, {"name": "renamed"}, {"active": True, "description": "d"}], 1):
        assert "version" not in await update_trigger(api, aid, t["id"], **changes)
        assert await version(app, t["id"]) == i
        assert await version(app, second["id"]) == 0
        seen.append(await fingerprint(app, aid))
        assert seen[-1] == (2, int(second["id"]), i)
        assert seen[-1] not in seen[:-1]
        assert await fingerprint(app, other) == other_before

    # deleting the trigger with the highest id and the one with the lower id
    assert (await api.get(f"/accounts/{aid}/triggers/{second['id']}/delete")).status_code == 204
    seen.append(await fingerprint(app, aid))
    assert seen[-1] == (1, int(t["id"]), 3)
    assert seen[-1] not in seen[:-1]
    assert (await api.get(f"/accounts/{aid}/triggers/{t['id']}/delete")).status_code == 204
    seen.append(await fingerprint(app, aid))
    assert seen[-1] == (0, None, None) != seen[-2]
    assert seen[-1] == seen[0]  # no triggers again: the same (empty) set as at first

    # a trigger created after the others were deleted: an id never given out before, so a
    # fingerprint unlike any earlier one (the empty set's included)
    again = await create_trigger(api, aid, name="again")
    assert int(again["id"]) > int(second["id"])
    fp = await fingerprint(app, aid)
    assert fp == (1, int(again["id"]), 0)
    assert fp not in seen

    assert await fingerprint(app, other) == other_before


async def test_delete_then_create_never_gives_an_earlier_fingerprint(app, api):
    aid = await account(api)
    first = await create_trigger(api, aid, name="first")
    kept = await create_trigger(api, aid, name="kept")
    seen = [await fingerprint(app, aid)]
    for i in range(3):
        last = await create_trigger(api, aid, name=f"t{i}")
        seen.append(await fingerprint(app, aid))
        assert (await api.get(f"/accounts/{aid}/triggers/{last['id']}/delete")).status_code == 204
        seen.append(await fingerprint(app, aid))
    # the deleted ones gave back exactly the triggers (and so the fingerprint) before them
    assert set(seen[::2]) == {seen[0]}
    assert (await api.get(f"/accounts/{aid}/triggers/{first['id']}/delete")).status_code == 204
    seen.append(await fingerprint(app, aid))
    assert seen[-1] == (1, int(kept["id"]), 0)
    replacement = await create_trigger(api, aid, name="replacement")  # as many triggers as at first
    fp = await fingerprint(app, aid)
    assert fp == (2, int(replacement["id"]), 0)
    assert fp not in seen


async def test_failed_writes_leave_it_alone(app, api):
    aid = await account(api)
    t = await create_trigger(api, aid)
    await update_trigger(api, aid, t["id"], active=False)
    before = await fingerprint(app, aid)
    assert before == (1, int(t["id"]), 1)

    r = await api.post(f"/accounts/{aid}/triggers/create",
                       json={**SIMPLE, "conditions": [{"name": "shoe_size", "value": 42}]})
    assert r.status_code == 400, r.text
    r = await api.post(f"/accounts/{aid}/triggers/{t['id']}/update", json={"conditions": [{"name": "x", "value": 1}]})
    assert r.status_code == 400, r.text
    unknown = int(t["id"]) + 1000
    r = await api.post(f"/accounts/{aid}/triggers/{unknown}/update", json={"active": True})
    assert r.status_code == 404, r.text
    assert (await api.get(f"/accounts/{aid}/triggers/{unknown}/delete")).status_code == 404

    assert await fingerprint(app, aid) == before
    assert await version(app, t["id"]) == 1


async def test_another_partners_writes_cannot_touch_it(app, api):
    aid = await account(api)
    t = await create_trigger(api, aid)
    before = await fingerprint(app, aid)
    async with client_for(app, await new_key(app)) as other:
        assert (await other.post(f"/accounts/{aid}/triggers/create", json=SIMPLE)).status_code == 404
        r = await other.post(f"/accounts/{aid}/triggers/{t['id']}/update", json={"active": False})
        assert r.status_code == 404
        assert (await other.get(f"/accounts/{aid}/triggers/{t['id']}/delete")).status_code == 404
    assert await fingerprint(app, aid) == before
    assert await version(app, t["id"]) == 0


async def test_the_api_never_answers_the_version(app, api):
    aid = await account(api)
    t = await create_trigger(api, aid)
    assert list(t) == API_FIELDS
    updated = await update_trigger(api, aid, t["id"], name="changed")
    assert list(updated) == API_FIELDS
    assert await version(app, t["id"]) == 1
    got = (await api.get(f"/accounts/{aid}/triggers/{t['id']}/get")).json()
    assert got == updated and "version" not in got
    page = (await api.get(f"/accounts/{aid}/triggers/")).json()
    assert page["records"] == [updated]


async def test_deleting_an_account_with_triggers(app, api):
    aid, kept = await account(api), await account(api)
    for i in range(3):
        t = await create_trigger(api, aid, name=f"t{i}")
        await update_trigger(api, aid, t["id"], active=False)
    await create_trigger(api, kept)
    kept_before = await fingerprint(app, kept)

    assert (await api.get(f"/accounts/{aid}/delete")).status_code == 204
    assert (await api.get(f"/accounts/{aid}/get")).status_code == 404
    assert await fingerprint(app, aid) == (0, None, None)
    async with app.db.read() as s:
        assert await s.fetchval("SELECT count(*) FROM accounts WHERE id = $1", int(aid)) == 0
    assert await fingerprint(app, kept) == kept_before


async def test_deleting_a_partner_cascades_through_accounts_and_triggers(app):
    # no route deletes a partner; the cascade (partners -> accounts -> triggers) is the database's
    partner_id, key = await _partner(app)
    async with client_for(app, key) as api:
        aid = await account(api)
        await create_trigger(api, aid)
        await create_trigger(api, aid, name="second")
    async with app.db.transaction() as s:
        assert await s.execute("DELETE FROM partners WHERE id = $1", partner_id) == 1
    async with app.db.read() as s:
        assert await s.fetchval("SELECT count(*) FROM accounts WHERE partner_id = $1", partner_id) == 0
    assert await fingerprint(app, aid) == (0, None, None)


async def _partner(app) -> tuple[int, str]:
    name = f"partner-{secrets.token_hex(6)}"
    async with app.db.transaction() as session:
        partner_id = await partners.create_partner(session, name=name)
        return partner_id, await partners.create_key(session, partner_id=partner_id, name=name)


async def keys(app, aid: str) -> tuple[object, object, tuple]:
    """The cache key as the service reads it with the account, the key it reads with the rows
    it builds a plan from, and the triggers as (id, version) pairs."""
    from opensupp.triggers import service

    async with app.db.read() as s:
        row = await s.fetchrow(service._ACCOUNT_SQL[s.dialect], int(aid), await partner_of(s, aid))
        rows = await s.fetch(service._TRIGGERS_SQL[s.dialect], int(aid), service.MAX_EVALUATED + 1)
        pairs = tuple(tuple(r) for r in await s.fetch(
            "SELECT id, version FROM triggers WHERE account_id = $1 ORDER BY id", int(aid)))
    if s.dialect == "sqlite":
        assert {r[0] for r in rows} == {row[1]}  # the revision on every row (a row of NULLs: none)
        return row[1], rows[0][0], pairs
    assert [r[0] for r in rows] == [None] * len(rows)
    return row[1], service._fingerprint(rows), pairs


async def test_the_cache_key_is_read_the_same_with_the_account_and_with_the_rows(app, api, database_url):
    aid = await account(api)
    read, built, pairs = await keys(app, aid)
    assert read == built and pairs == ()
    assert read == (0 if database_url.startswith("sqlite") else None)
    first = (await create_trigger(api, aid))["id"]
    second = (await create_trigger(api, aid))["id"]
    await update_trigger(api, aid, first, name="renamed")
    read, built, pairs = await keys(app, aid)
    assert read == built
    assert pairs == ((int(first), 1), (int(second), 0))
    assert read == (3 if database_url.startswith("sqlite") else f"{first}.1,{second}.0")


async def test_equal_cache_keys_are_equal_triggers_and_every_write_moves_the_key(app, api):
    aid, other = await account(api), await account(api)
    seen: dict[object, tuple] = {}  # key -> the triggers it stood for

    async def look(changed: bool = True):
        """After a write that changed the triggers (or, ``changed=False``, did not)."""
        key, built, pairs = await keys(app, aid)
        assert key == built
        assert seen.setdefault(key, pairs) == pairs  # one key never stands for two sets
        assert (key != last[0]) is changed and (pairs != last[1]) is changed
        last[:] = [key, pairs]

    last: list = [object(), None]  # the key and the triggers last seen
    await look()
    t = await create_trigger(api, aid)
    await look()
    second = await create_trigger(api, aid, name="second")
    await look()
    for changes in ({"active": False}, {"name": "renamed"}, {"conditions": [{"name": "number_of_visits", "value": 2}]}):
        await update_trigger(api, aid, t["id"], **changes)
        await look()
    other_key = (await keys(app, other))[0]
    await create_trigger(api, other)  # another account's write
    assert (await keys(app, other))[0] != other_key
    await look(changed=False)  # ... leaves this account's key alone
    for tid in (second["id"], t["id"]):
        assert (await api.get(f"/accounts/{aid}/triggers/{tid}/delete")).status_code == 204
        await look()
    again = await create_trigger(api, aid, name="again")
    await look()
    # failed writes leave it alone
    r = await api.post(f"/accounts/{aid}/triggers/{again['id']}/update",
                       json={"conditions": [{"name": "x", "value": 1}]})
    assert r.status_code == 400
    assert (await api.get(f"/accounts/{aid}/triggers/{int(again['id']) + 1000}/delete")).status_code == 404
    await look(changed=False)


async def test_sqlite_moves_the_key_for_writes_outside_the_application(app, api, database_url):
    """The revision is the database's: a trigger row changed by hand (SQL, another tool)
    moves it too, and the next evaluation sees the change. (PostgreSQL: such a writer must
    bump ``version``, migration 0003 says.)"""
    if not database_url.startswith("sqlite"):
        pytest.skip("the revision is kept by SQLite's triggers only (migration 0004)")
    aid = await account(api)
    t = await create_trigger(api, aid)
    r = await api.post(f"/accounts/{aid}/triggers/evaluate", json={})
    assert [d["fires"] for d in r.json()["triggers"]] == ["now"]  # cached from here on
    key = (await keys(app, aid))[0]
    async with app.db.transaction() as s:
        assert await s.execute("UPDATE triggers SET active = $1 WHERE id = $2", False, int(t["id"])) == 1
    assert (await keys(app, aid))[0] == key + 1
    r = await api.post(f"/accounts/{aid}/triggers/evaluate", json={})
    assert [(d["fires"], d["why"]) for d in r.json()["triggers"]] == [
        ("never", "inactive: the trigger's active is false")]
    other = await account(api)
    other_key = (await keys(app, other))[0]
    async with app.db.transaction() as s:  # moved to another account: both move
        assert await s.execute("UPDATE triggers SET account_id = $1 WHERE id = $2", int(other), int(t["id"])) == 1
    assert ((await keys(app, aid))[0], (await keys(app, other))[0]) == (key + 2, other_key + 1)
    assert (await api.post(f"/accounts/{aid}/triggers/evaluate", json={})).json()["triggers"] == []
    async with app.db.transaction() as s:
        assert await s.execute("DELETE FROM triggers WHERE id = $1", int(t["id"])) == 1
    assert ((await keys(app, aid))[0], (await keys(app, other))[0]) == (key + 2, other_key + 2)
    assert (await api.post(f"/accounts/{other}/triggers/evaluate", json={})).json()["triggers"] == []


async def partner_of(session, aid: str) -> int:
    return await session.fetchval("SELECT partner_id FROM accounts WHERE id = $1", int(aid))
