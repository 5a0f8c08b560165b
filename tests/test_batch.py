"""POST /batch: each call answered exactly as if it had come alone, in the request's order."""

from __future__ import annotations

import pytest

from conftest import client_for, new_key
from opensupp.app import create_app
from opensupp.config import Settings

pytestmark = pytest.mark.anyio


def create(title: str, key: str | None = None, **extra) -> dict:
    call = {"method": "POST", "url": "/accounts/create", "body": {"title": title, "lang": "en"}, **extra}
    if key is not None:
        call["headers"] = {"Idempotency-Key": key}
    return call


async def batch(api, calls: list[dict]) -> list[dict]:
    r = await api.post("/batch", json={"requests": calls})
    assert r.status_code == 200, r.text
    responses = r.json()["responses"]
    assert len(responses) == len(calls)
    return responses


async def titles(api) -> list[str]:
    return sorted(a["title"] for a in (await api.get("/accounts/?limit=1000")).json()["records"])


async def test_creates_answer_in_order_and_are_stored(api):
    responses = await batch(api, [create(f"Shop {i}") for i in range(20)])
    assert [r["id"] for r in responses] == [str(i) for i in range(20)]
    assert {r["status"] for r in responses} == {200}
    assert [r["body"]["title"] for r in responses] == [f"Shop {i}" for i in range(20)]
    for r in responses:
        assert (await api.get(f"/accounts/{r['body']['id']}/get")).json() == r["body"]
    assert await titles(api) == sorted(f"Shop {i}" for i in range(20))


async def test_each_call_fails_alone_with_its_own_error(api):
    other = client_for(api._transport.app, await new_key(api._transport.app))
    async with other:
        foreign = (await other.post("/accounts/create", json={"title": "Theirs", "lang": "en"})).json()["id"]
    mine = (await api.post("/accounts/create", json={"title": "Mine", "lang": "en"})).json()["id"]
    await api.post("/accounts/create", json={"title": "Kept", "lang": "en"})  # listed whatever the others do
    responses = await batch(api, [
        create("Good", id="a"),
        {"id": "b", "method": "POST", "url": "/accounts/create", "body": {"title": "", "lang": "xx", "nope": 1}},
        {"id": "c", "method": "GET", "url": f"/accounts/{foreign}/get"},
        {"id": "d", "method": "GET", "url": "/no/such/path"},
        {"id": "e", "method": "POST", "url": f"/accounts/{mine}/get"},
        {"id": "f", "method": "GET", "url": f"/accounts/{mine}/delete"},
        {"id": "g", "method": "GET", "url": "/accounts/?limit=1"},
        {"id": "h", "method": "POST", "url": "/batch", "body": {"requests": []}},
        {"id": "i", "method": "GET", "url": "/accounts/create"},  # the wrapper's GET-as-empty-POST
    ])
    by_id = {r["id"]: r for r in responses}
    assert by_id["a"]["status"] == 200 and by_id["a"]["body"]["title"] == "Good"
    assert by_id["b"]["status"] == 400 and by_id["b"]["body"]["error"] == "ValidationError"
    assert {e["field"] for e in by_id["b"]["body"]["errors"]} == {"title", "lang", "nope"}
    assert by_id["c"]["status"] == 404  # another partner's account is not there at all
    assert by_id["d"]["status"] == 404 and by_id["d"]["body"]["error"] == "NotFound"
    assert by_id["e"]["status"] == 405 and by_id["e"]["headers"]["Allow"] == "GET"
    assert by_id["f"]["status"] == 204 and by_id["f"]["body"] is None
    assert by_id["g"]["status"] == 200 and len(by_id["g"]["body"]["records"]) == 1
    assert by_id["h"]["status"] == 404 and "cannot be called in a batch" in by_id["h"]["body"]["message"]
    assert by_id["i"]["status"] == 400 and {e["field"] for e in by_id["i"]["body"]["errors"]} == {"title", "lang"}
    assert (await api.get(f"/accounts/{mine}/get")).status_code == 404  # the delete happened
    assert await titles(api) == ["Good", "Kept"]


async def test_idempotency_key_per_call_replays_across_batches_and_within_one(api):
    first = await batch(api, [create("Once", "k-1"), create("Twice", "k-2")])
    again = await batch(api, [create("Once", "k-1"), create("Twice", "k-2"), create("Twice", "k-2")])
    assert [r["body"] for r in again[:2]] == [r["body"] for r in first]
    assert all(r["headers"].get("Idempotent-Replayed") == "true" for r in again)
    assert "Idempotent-Replayed" not in first[0]["headers"]
    mismatch = await batch(api, [create("Other title", "k-1")])
    assert mismatch[0]["status"] == 422
    # the same new key twice in one batch: the calls run concurrently, one account is made
    same = await batch(api, [create("Race", "k-3") for _ in range(5)])
    assert {r["status"] for r in same} == {200}
    assert len({r["body"]["id"] for r in same}) == 1
    assert await titles(api) == ["Once", "Race", "Twice"]


async def test_a_malformed_batch_is_refused_whole_with_exact_paths(api):
    cases = [
        ({}, {"requests"}),
        ({"requests": []}, {"requests"}),
        ({"requests": [create("x")] * 101}, {"requests"}),
        ({"requests": [{"method": "PUT", "url": "/accounts/create"}]}, {"requests[0].method"}),
        ({"requests": [{"method": "GET", "url": "accounts/"}]}, {"requests[0].url"}),
        ({"requests": [{"method": "GET", "url": "/" + "a" * 2000}]}, {"requests[0].url"}),
        ({"requests": [{"method": "POST", "url": "/accounts/create", "body": [1]}]}, {"requests[0].body"}),
        ({"requests": [create("x", headers={"apiKey": "osk_other"})]}, {"requests[0].headers.apiKey"}),
        ({"requests": [create("x", extra=1)]}, {"requests[0].extra"}),
    ]
    for body, fields in cases:
        r = await api.post("/batch", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"] == "ValidationError"
        assert {e["field"] for e in r.json()["errors"]} == fields, body
    assert await titles(api) == []


async def test_header_names_are_case_insensitive(api):
    responses = await batch(api, [create("a", headers={"idempotency-key": "lower"}),
                                  create("a", headers={"IDEMPOTENCY-KEY": "lower"})])
    assert responses[0]["body"] == responses[1]["body"]
    # one created, the other replayed its answer; which is which is not promised (a batch's
    # calls run in no guaranteed order: when they fall back to running alone, concurrently)
    assert sorted(str(r["headers"].get("Idempotent-Replayed")) for r in responses) == ["None", "true"]


async def test_a_batch_needs_the_key_once_and_cannot_borrow_another(anon):
    r = await anon.post("/batch", json={"requests": [create("x")]})
    assert r.status_code == 401


async def test_every_call_counts_against_the_rate_limit(database_url):
    app = create_app(Settings(database_url=database_url, key_cache_seconds=0, rate_limit=1, rate_burst=3))
    await app.startup()
    try:
        key = await new_key(app)
        async with client_for(app, key) as c:
            r = await c.post("/batch", json={"requests": [create(f"r{i}") for i in range(5)]})
            statuses = [x["status"] for x in r.json()["responses"]]
            assert statuses.count(200) == 2 and statuses.count(429) == 3  # the batch itself took a token
            limited = next(x for x in r.json()["responses"] if x["status"] == 429)
            assert limited["headers"]["Retry-After"] == "1"
    finally:
        await app.shutdown()


async def test_a_unit_failing_mid_batch_leaves_every_other_call_done_exactly_once(api):
    # The calls first run one after another in one shared transaction; the 404 below fails
    # inside its unit of work, so that transaction rolls back and each call runs again alone.
    account = (await api.post("/accounts/create", json={"title": "Home", "lang": "en"})).json()["id"]
    trigger = {"name": "t", "actions": [{"name": "message", "agent_nick": "Ann", "message": "Hi"}]}
    calls = [{"method": "POST", "url": f"/accounts/{account}/triggers/create", "body": {**trigger, "name": f"t{i}"},
              "headers": {"Idempotency-Key": f"t-{i}"}} for i in range(30)]
    calls.insert(15, {"method": "POST", "url": f"/accounts/{10**17}/triggers/create", "body": trigger})
    responses = await batch(api, calls)
    assert [r["status"] for r in responses] == [200] * 15 + [404] + [200] * 15
    listed = (await api.get(f"/accounts/{account}/triggers/")).json()["records"]
    assert sorted(t["name"] for t in listed) == sorted(f"t{i}" for i in range(30))
    assert all("Idempotent-Replayed" not in r["headers"] for r in responses)


async def test_an_expired_key_in_a_batch_creates_anew(database_url):
    import anyio

    app = create_app(Settings(database_url=database_url, key_cache_seconds=0, idempotency_hours=1 / 3600))
    await app.startup()
    try:
        async with client_for(app, await new_key(app)) as c:
            first = await batch(c, [create("Early", "short-lived"), create("Other", "other")])
            await anyio.sleep(2.1)
            later = await batch(c, [create("Later", "short-lived"), create("New", "new")])
            assert [r["status"] for r in later] == [200, 200]
            assert later[0]["body"]["id"] != first[0]["body"]["id"]
            assert "Idempotent-Replayed" not in later[0]["headers"]
            assert await titles(c) == ["Early", "Later", "New", "Other"]
    finally:
        await app.shutdown()
