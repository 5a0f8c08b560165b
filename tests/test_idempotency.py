"""Idempotency-Key on creates: replays, mismatches, races."""

from __future__ import annotations

import anyio
import pytest

from conftest import client_for
from opensupp.app import create_app
from opensupp.config import Settings

pytestmark = pytest.mark.anyio

ACCOUNT = {"title": "Acme", "lang": "en"}


async def count(api):
    return len((await api.get("/accounts/")).json()["records"])


async def test_same_key_same_body_replays(api):
    h = {"Idempotency-Key": "order-1"}
    first = await api.post("/accounts/create", json=ACCOUNT, headers=h)
    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    again = await api.post("/accounts/create", content=b'{"lang": "en",   "title": "Acme"}', headers=h)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert await count(api) == 1


async def test_same_key_other_body_is_422(api):
    h = {"Idempotency-Key": "order-2"}
    await api.post("/accounts/create", json=ACCOUNT, headers=h)
    r = await api.post("/accounts/create", json={**ACCOUNT, "title": "Other"}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"] == "IdempotencyMismatch"
    assert await count(api) == 1


async def test_same_key_trailing_slash_is_the_same_path(api):
    h = {"Idempotency-Key": "order-3"}
    first = await api.post("/accounts/create", json=ACCOUNT, headers=h)
    again = await api.post("http://api.test//accounts/create/", json=ACCOUNT, headers=h)
    assert again.content == first.content


async def test_errors_are_not_stored(api):
    h = {"Idempotency-Key": "order-4"}
    r = await api.post("/accounts/create", json={"title": "Acme"}, headers=h)
    assert r.status_code == 400
    r = await api.post("/accounts/create", json=ACCOUNT, headers=h)
    assert r.status_code == 200
    assert await count(api) == 1


async def test_keys_belong_to_the_partner(app, api):
    from conftest import new_key

    h = {"Idempotency-Key": "shared-name"}
    mine = (await api.post("/accounts/create", json=ACCOUNT, headers=h)).json()
    async with client_for(app, await new_key(app)) as other:
        theirs = (await other.post("/accounts/create", json=ACCOUNT, headers=h)).json()
    assert theirs["id"] != mine["id"]


@pytest.mark.parametrize("value", ["", "a" * 256, "é", "with space"])
async def test_bad_key_is_400(api, value):
    r = await api.post("/accounts/create", json=ACCOUNT, headers={"Idempotency-Key": value.encode("utf-8")})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_twenty_concurrent_requests_create_one_account(api):
    answers = []

    async def send():
        answers.append(await api.post("/accounts/create", json=ACCOUNT, headers={"Idempotency-Key": "race"}))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(send)
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert await count(api) == 1


async def test_concurrent_creates_without_keys_all_land(api):
    answers = []

    async def send(i):
        answers.append((await api.post("/accounts/create", json={"title": f"A{i}", "lang": "en"})).json())

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(send, i)
    assert len({a["id"] for a in answers}) == 50
    assert len({a["accountKey"] for a in answers}) == 50
    assert await count(api) == 50


async def test_expired_keys_are_free_again(database_url, key):
    app = create_app(Settings(database_url=database_url, key_cache_seconds=0, idempotency_hours=1 / 3600))
    await app.startup()
    try:
        async with client_for(app, key) as api:
            h = {"Idempotency-Key": "short-lived"}
            first = (await api.post("/accounts/create", json=ACCOUNT, headers=h)).json()
            await anyio.sleep(2.1)
            second = (await api.post("/accounts/create", json={"title": "Later", "lang": "en"}, headers=h)).json()
            assert second["id"] != first["id"]
            assert await count(api) == 2
    finally:
        await app.shutdown()


async def test_expired_keys_are_purged_in_slices(app, settings):
    """Each purge statement deletes a bounded slice (a day of keys at a high rate would
    otherwise be one statement past OPENSUPP_DB_STATEMENT_TIMEOUT), and the purge a
    server runs at start goes on slice after slice until none is left."""
    from opensupp.idempotency import service as idempotency
    from opensupp.partners import service as partners
    from opensupp.timeutil import now

    t = now()
    async with app.db.transaction() as session:
        partner_id = await partners.create_partner(session, name=f"purge-{t}-{id(session)}")
        rows = [(partner_id, f"old-{i}", b"\0" * 32, 200, "{}", t - 2 * 86400) for i in range(12_000)]
        rows += [(partner_id, f"new-{i}", b"\0" * 32, 200, "{}", t) for i in range(3)]
        await idempotency.save_many(session, rows)
    async with app.db.single() as session:
        first = await idempotency.purge_expired(session, before=t - 86400)
    assert first == idempotency.PURGE_SLICE, f"one purge statement deleted {first} keys"

    async def left() -> tuple[int, int]:
        async with app.db.read() as session:
            old = await session.fetchval(
                "SELECT count(*) FROM idempotency_keys WHERE partner_id = $1 AND key LIKE 'old-%'", partner_id)
            new = await session.fetchval(
                "SELECT count(*) FROM idempotency_keys WHERE partner_id = $1 AND key LIKE 'new-%'", partner_id)
        return old, new

    second = create_app(settings)  # its purge runs at start
    await second.startup()
    try:
        for _ in range(100):
            if (await left())[0] == 0:
                break
            await anyio.sleep(0.1)
    finally:
        await second.shutdown()
    assert await left() == (0, 3)
