"""The outbox: deliveries written with their transaction, signed, sent by the worker to a real
local receiver (uvicorn), retried, refused at internal addresses, claimed once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import sys
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook

from conftest import serving
from opensupp.accounts import service as accounts
from opensupp.app import create_app
from opensupp.config import Settings
from opensupp.db import open_database
from opensupp.hooks import service as hooks
from opensupp.outbox import service
from opensupp.outbox.sending import parse_networks
from opensupp.outbox.worker import Worker
from opensupp.partners import service as partners

pytestmark = pytest.mark.anyio
LOOPBACK = parse_networks("127.0.0.1/32")


class Receiver:
    """An ASGI app that records each request and answers the next of ``statuses`` (then 200)."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0, body: bytes = b"thanks",
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.body = body
        self.headers = headers or []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        self.requests.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
        status = self.statuses.pop(0) if self.statuses else 200
        headers = [(b"content-type", b"text/plain"), *self.headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body if status == 200 else b"no"})


@pytest.fixture(autouse=True)
def only_this_tests_deliveries(database_url: str) -> None:
    """Deliveries other tests left pending in the shared database (an API test's hook.test, an
    hourly stats report made while an app ran) are set aside as failed, so that a worker here
    claims this test's own only."""
    async def set_aside() -> None:
        database = open_database(database_url, pool_size=1)
        await database.open()
        try:
            async with database.transaction() as session:
                await session.execute("UPDATE deliveries SET status = 'failed' WHERE status = 'pending'")
        finally:
            await database.close()

    asyncio.run(set_aside())


@pytest.fixture
async def db(database_url: str) -> Any:
    database = open_database(database_url, pool_size=5)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
async def receiver() -> Any:
    async with contextlib.AsyncExitStack() as made:

        async def start(**kw: Any) -> tuple[Receiver, int]:
            r = Receiver(**kw)
            return r, await made.enter_async_context(serving(r, lifespan="off"))

        yield start


async def hook_to(db: Any, url: str) -> tuple[int, int, str]:
    """An account and its webhook made by the services; its URL then set to ``url`` in SQL, since
    the API refuses loopback URLs (what this test's receiver is at)."""
    async with db.transaction() as session:
        partner_id = await partners.create_partner(session, name=f"outbox-{secrets.token_hex(6)}")
        account = await accounts.create_account(session, partner_id=partner_id, title="Acme", lang="en")
        hook = await hooks.create_hook(session, partner_id=partner_id, account_id=account.id, name="webhook",
                                       config={"url": "https://example.com/h"})
        config = {**hook.config, "url": url}
        await session.execute("UPDATE hooks SET config = $1 WHERE id = $2", orjson.dumps(config).decode(), hook.id)
    return account.id, hook.id, hook.config["secret"]


async def enqueue(db: Any, account_id: int, hook_id: int, payload: dict[str, Any] | None = None) -> Any:
    async with db.transaction() as session:
        return await service.enqueue(session, account_id=account_id, hook_id=hook_id, event="conversation.closed",
                                     payload=payload or {"type": "event_callback", "event": "conversation.closed"})


async def deliveries(db: Any, account_id: int, hook_id: int) -> list[Any]:
    async with db.read() as session:
        found, _ = await service.list_deliveries(session, account_id=account_id, hook_id=hook_id, after=0, limit=100)
        return found


async def test_a_delivery_is_signed_both_ways(db, receiver):
    r, port = await receiver()
    aid, hid, secret = await hook_to(db, f"http://127.0.0.1:{port}/in")
    delivery = await enqueue(db, aid, hid, {"hello": "world"})
    assert await Worker(db, networks=LOOPBACK).run_once() == 1
    [(headers, body)] = r.requests
    assert body == b'{"hello":"world"}'
    assert headers["x-smartsupp-hmac"] == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["webhook-id"] == delivery.webhook_id and delivery.webhook_id.startswith("msg_")
    assert Webhook(secret).verify(body, headers) == {"hello": "world"}
    [logged] = await deliveries(db, aid, hid)
    assert (logged.status, logged.attempts, logged.last_status_code, logged.response) == ("delivered", 1, 200, "thanks")


async def test_failures_are_retried_on_the_schedule(db, receiver):
    r, port = await receiver(statuses=[500, 503])
    aid, hid, _ = await hook_to(db, f"http://127.0.0.1:{port}/in")
    await enqueue(db, aid, hid)
    worker = Worker(db, networks=LOOPBACK, schedule=(0, 0))
    for _ in range(3):
        assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert len(r.requests) == 3 and len({h["webhook-id"] for h, _ in r.requests}) == 1
    [logged] = await deliveries(db, aid, hid)
    assert (logged.status, logged.attempts, logged.last_status_code) == ("delivered", 3, 200)


async def test_the_last_failure_fails_the_delivery(db, receiver):
    r, port = await receiver(statuses=[500, 500])
    aid, hid, _ = await hook_to(db, f"http://127.0.0.1:{port}/in")
    await enqueue(db, aid, hid)
    worker = Worker(db, networks=LOOPBACK, schedule=(0,))
    assert await worker.run_once() == 1 and await worker.run_once() == 1 and await worker.run_once() == 0
    [logged] = await deliveries(db, aid, hid)
    assert (logged.status, logged.attempts, logged.last_error) == ("failed", 2, "HTTP 500")


def test_the_schedule_honours_retry_after():
    assert service.next_delay(1, None, service.RETRY_SCHEDULE) == 5
    assert service.next_delay(1, 60, service.RETRY_SCHEDULE) == 60
    assert service.next_delay(1, 10**9, service.RETRY_SCHEDULE) == 36000
    assert service.next_delay(7, None, service.RETRY_SCHEDULE) == 36000
    assert service.next_delay(8, None, service.RETRY_SCHEDULE) is None


async def test_a_name_resolving_to_loopback_is_refused_unless_allowed(db, receiver):
    r, port = await receiver()
    aid, hid, _ = await hook_to(db, f"http://localhost:{port}/in")
    await enqueue(db, aid, hid)
    assert await Worker(db, schedule=(0,)).run_once() == 1
    assert r.requests == []
    [logged] = await deliveries(db, aid, hid)
    assert logged.status == "pending" and "internal address" in logged.last_error
    assert await Worker(db, networks=parse_networks("127.0.0.0/8,::1/128")).run_once() == 1
    assert len(r.requests) == 1 and (await deliveries(db, aid, hid))[0].status == "delivered"
    assert r.requests[0][0]["host"] == f"localhost:{port}"  # the name asked for, the address checked


async def test_the_enqueue_rolls_back_with_its_transaction(db):
    aid, hid, _ = await hook_to(db, "http://127.0.0.1:9/in")
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await service.enqueue(session, account_id=aid, hook_id=hid, event="x", payload={})
            raise RuntimeError("the change failed")
    assert await deliveries(db, aid, hid) == []


async def test_an_expired_lease_is_delivered_again_with_the_same_id(db, receiver):
    r, port = await receiver()
    aid, hid, _ = await hook_to(db, f"http://127.0.0.1:{port}/in")
    delivery = await enqueue(db, aid, hid)
    async with db.transaction() as session:  # a worker claims it, then dies before sending
        [claimed] = await service.claim_due(session, limit=10, lease=-1)  # a lease already over
    assert claimed.delivery.webhook_id == delivery.webhook_id
    assert await Worker(db, networks=LOOPBACK).run_once() == 1
    [(headers, _)] = r.requests
    assert headers["webhook-id"] == delivery.webhook_id
    [logged] = await deliveries(db, aid, hid)
    assert (logged.status, logged.attempts) == ("delivered", 2)


async def test_a_leased_delivery_is_not_claimed_again(db):
    aid, hid, _ = await hook_to(db, "http://127.0.0.1:9/in")
    await enqueue(db, aid, hid)
    async with db.transaction() as session:
        assert len(await service.claim_due(session, limit=10, lease=60)) == 1
    async with db.transaction() as session:
        assert await service.claim_due(session, limit=10, lease=60) == []


async def test_workers_in_parallel_deliver_each_event_once(db, database_url, receiver):
    r, port = await receiver(delay=0.2)
    aid, hid, _ = await hook_to(db, f"http://127.0.0.1:{port}/in")
    for i in range(30):
        await enqueue(db, aid, hid, {"n": i})
    pools = [open_database(database_url, pool_size=3) for _ in range(3)]  # as separate processes have
    for pool in pools:
        await pool.open()
    try:
        workers = [Worker(pool, networks=LOOPBACK) for pool in pools]
        while sum(await asyncio.gather(*(w.run_once() for w in workers))):
            pass
    finally:
        for pool in pools:
            await pool.close()
    assert r.most_in_flight > 1  # the workers did send in parallel
    bodies = sorted(body for _, body in r.requests)
    assert len(bodies) == 30 and len(set(bodies)) == 30
    assert all(d.status == "delivered" and d.attempts == 1 for d in await deliveries(db, aid, hid))


def test_the_allowed_networks_setting_is_checked():
    assert Settings(hook_allow_networks="10.0.0.0/8, 127.0.0.1/32").hook_allow_networks
    with pytest.raises(ValueError, match="CIDRs"):
        Settings(hook_allow_networks="10.0.0.0/33")


async def test_a_redirect_is_not_followed_and_a_long_answer_is_cut(db, receiver):
    r, port = await receiver(statuses=[302], headers=[(b"location", b"/elsewhere")])
    aid, hid, _ = await hook_to(db, f"http://127.0.0.1:{port}/in")
    await enqueue(db, aid, hid)
    worker = Worker(db, networks=LOOPBACK, schedule=(0,))
    assert await worker.run_once() == 1
    assert [h.get("host") for h, _ in r.requests] == [f"127.0.0.1:{port}"]
    [logged] = await deliveries(db, aid, hid)
    assert (logged.status, logged.last_status_code) == ("pending", 302)
    r.body = b"x" * 1_000_000
    assert await worker.run_once() == 1
    [logged] = await deliveries(db, aid, hid)
    assert (logged.status, logged.response) == ("delivered", "x" * 500)


async def test_an_invalid_url_is_a_failed_attempt(db):
    aid, hid, _ = await hook_to(db, "http://exa mple.com:99999/")
    await enqueue(db, aid, hid)
    assert await Worker(db, schedule=(0,)).run_once() == 1
    [logged] = await deliveries(db, aid, hid)
    assert logged.status == "pending" and logged.last_error


async def test_the_server_runs_the_worker(database_url, receiver):
    r, port = await receiver()
    settings = Settings(database_url=database_url, hook_allow_networks="127.0.0.1/32")
    application = create_app(settings)
    await application.startup()
    try:
        aid, hid, _ = await hook_to(application.db, f"http://127.0.0.1:{port}/in")
        await enqueue(application.db, aid, hid)
        for _ in range(100):
            if r.requests:
                break
            await asyncio.sleep(0.05)
        assert len(r.requests) == 1
    finally:
        await application.shutdown()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app's own worker off: the tests run theirs, allowed to reach the receiver."""
    return Settings(database_url=database_url, key_cache_seconds=0, db_pool_size=25, outbox_worker=False)


async def test_the_api_tests_a_hook_lists_and_retries_its_deliveries(app, api, receiver):
    r, port = await receiver(statuses=[500])
    aid = (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()["id"]
    hook = (await api.post(f"/accounts/{aid}/hooks/create", json={"name": "webhook",
                                                                  "config": {"url": "https://example.com/h"}})).json()
    async with app.db.transaction() as session:  # the API refuses loopback URLs: the receiver's
        await session.execute("UPDATE hooks SET config = $1 WHERE id = $2",
                              orjson.dumps({**hook["config"], "url": f"http://127.0.0.1:{port}/"}).decode(),
                              int(hook["id"]))
    base = f"/accounts/{aid}/hooks/{hook['id']}"
    sent = await api.post(f"{base}/test")
    assert sent.status_code == 200, sent.text
    test = sent.json()
    assert (test["event"], test["status"], test["attempts"], test["payload"]["event"]) == (
        "hook.test", "pending", 0, "hook.test")
    assert await Worker(app.db, networks=LOOPBACK, schedule=(3600,)).run_once() == 1
    page = (await api.get(f"{base}/deliveries/")).json()
    assert page["next"] is None
    [logged] = page["records"]
    assert (logged["id"], logged["status"], logged["lastStatusCode"], logged["attempts"]) == (
        test["id"], "pending", 500, 1)
    retried = (await api.post(f"{base}/deliveries/{test['id']}/retry")).json()
    assert (retried["status"], retried["attempts"]) == ("pending", 0)
    assert await Worker(app.db, networks=LOOPBACK).run_once() == 1
    [logged] = (await api.get(f"{base}/deliveries")).json()["records"]
    assert (logged["status"], logged["lastStatusCode"], logged["response"]) == ("delivered", 200, "thanks")
    assert len({h["webhook-id"] for h, _ in r.requests}) == 1 and len(r.requests) == 2
    assert Webhook(hook["config"]["secret"]).verify(r.requests[1][1], r.requests[1][0])["event"] == "hook.test"
    assert (await api.post(f"{base}/deliveries/999999/retry")).status_code == 404
    assert (await api.get(f"/accounts/{aid}/hooks/999999/deliveries")).status_code == 404


async def test_deliveries_page_by_keyset(app, api):
    aid = (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()["id"]
    hook = (await api.post(f"/accounts/{aid}/hooks/create", json={"name": "webhook",
                                                                  "config": {"url": "https://example.com/h"}})).json()
    base = f"/accounts/{aid}/hooks/{hook['id']}"
    ids = [(await api.post(f"{base}/test")).json()["id"] for _ in range(3)]
    first = (await api.get(f"{base}/deliveries", params={"limit": 2})).json()
    second = (await api.get(f"{base}/deliveries", params={"limit": 2, "after": first["next"]})).json()
    assert [d["id"] for d in first["records"] + second["records"]] == ids and second["next"] is None


async def test_the_worker_command_delivers(db, database_url, receiver):
    r, port = await receiver()
    aid, hid, _ = await hook_to(db, f"http://127.0.0.1:{port}/in")
    await enqueue(db, aid, hid)
    env = {**os.environ, "OPENSUPP_DATABASE_URL": database_url, "OPENSUPP_HOOK_ALLOW_NETWORKS": "127.0.0.1/32"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "opensupp", "worker", env=env,
                                                   stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(300):
            if r.requests:
                break
            await asyncio.sleep(0.05)
        assert len(r.requests) == 1
    finally:
        process.terminate()
        await process.wait()
