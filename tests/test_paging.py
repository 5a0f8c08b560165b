"""Keyset paging: every record exactly once, at any page size."""

from __future__ import annotations

import re

import pytest

from opensupp.accounts import service as accounts
from opensupp.partners import service as partners

pytestmark = pytest.mark.anyio

TOTAL = 1_050


async def partner_id_of(app, key):
    async with app.db.read() as session:
        return (await partners.authenticate(session, key_hash=partners.hash_key(key))).partner_id


@pytest.fixture
async def filled(app, key):
    partner_id = await partner_id_of(app, key)
    async with app.db.transaction() as session:
        ids = [
            (await accounts.create_account(session, partner_id=partner_id, title=f"Account {i}", lang="en")).id
            for i in range(TOTAL)
        ]
    return [str(i) for i in ids]


async def walk(api, limit):
    seen, pages, after = [], 0, None
    while True:
        params = {"limit": limit} if limit else {}
        if after:
            params["after"] = after
        r = await api.get("/accounts/", params=params)
        assert r.status_code == 200
        page = r.json()
        pages += 1
        seen += [a["id"] for a in page["records"]]
        after = page["next"]
        if after is None:
            return seen, pages
        assert re.fullmatch(r"[A-Za-z0-9_-]+", after)  # appended verbatim by the PHP wrapper


@pytest.mark.parametrize("limit,pages", [(None, 2), (1000, 2), (100, 11), (7, 150), (525, 2), (1, 1050)])
async def test_every_record_once_oldest_first(api, filled, limit, pages):
    seen, count = await walk(api, limit)
    assert seen == filled
    assert count == pages


async def test_next_is_null_exactly_on_the_last_page(api, filled):
    first = (await api.get("/accounts/", params={"limit": 1000})).json()
    assert len(first["records"]) == 1000 and first["next"] is not None
    last = (await api.get("/accounts/", params={"after": first["next"]})).json()
    assert [a["id"] for a in last["records"]] == filled[1000:]
    assert last["next"] is None
    # a page that ends exactly on the last record says so
    full = (await api.get("/accounts/", params={"limit": 50, "after": first["next"]})).json()
    assert len(full["records"]) == 50 and full["next"] is None


async def test_the_php_wrappers_verbatim_query(api, filled):
    first = (await api.get("/accounts/?limit=2")).json()
    r = await api.get(f"/accounts/?limit=2&after={first['next']}")
    assert [a["id"] for a in r.json()["records"]] == filled[2:4]


async def test_pages_survive_deletes(api, filled):
    first = (await api.get("/accounts/", params={"limit": 10})).json()
    await api.get(f"/accounts/{filled[9]}/delete")  # the cursor's own record goes away
    await api.get(f"/accounts/{filled[10]}/delete")
    second = (await api.get("/accounts/", params={"limit": 10, "after": first["next"]})).json()
    assert [a["id"] for a in second["records"]] == filled[11:21]


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "", "1.5", "99999999999999999999"])
async def test_bad_limit(api, limit):
    r = await api.get(f"/accounts/?limit={limit}")
    assert r.status_code == 400
    assert r.json()["errors"] == [{"field": "limit", "message": "must be an integer from 1 to 1000"}]


@pytest.mark.parametrize("after", ["x", "gAAAAAAAAAA", "////////////", "AAAAAAAAAAB", "AAAAAAAAAAAA", "%00"])
async def test_bad_cursor(api, after):
    r = await api.get(f"/accounts/?after={after}")
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "after"


async def test_empty_list(api):
    assert (await api.get("/accounts/")).json() == {"records": [], "next": None}
