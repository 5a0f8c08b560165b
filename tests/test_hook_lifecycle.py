"""A hook's life beyond one delivery: its secret rotated (both secrets sign for 24 hours), its
deliveries failing for days (it is deactivated, with the reason on it), and a worker killed
mid-batch (nothing is lost; a repeat has the same webhook-id)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import signal
import sys
from typing import Any

import orjson
import pytest
import test_outbox
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from test_outbox import LOOPBACK, deliveries, enqueue, hook_to

from conftest import serving
from opensupp.config import Settings
from opensupp.outbox.worker import Worker

pytestmark = pytest.mark.anyio
# the outbox tests' fixtures
db, receiver, only_this_tests_deliveries = test_outbox.db, test_outbox.receiver, test_outbox.only_this_tests_deliveries


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app's own worker off: the tests run theirs, allowed to reach the receiver."""
    return Settings(database_url=database_url, key_cache_seconds=0, db_pool_size=25, outbox_worker=False)


async def api_hook(app: Any, api: Any, url: str) -> tuple[str, dict[str, Any]]:
    aid = (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()["id"]
    hook = (await api.post(f"/accounts/{aid}/hooks/create", json={"name": "webhook",
                                                                  "config": {"url": "https://example.com/h"}})).json()
    async with app.db.transaction() as session:  # the API refuses loopback URLs: the receiver's
        await session.execute("UPDATE hooks SET config = $1 WHERE id = $2",
                              orjson.dumps({**hook["config"], "url": url}).decode(), int(hook["id"]))
    return f"/accounts/{aid}/hooks/{hook['id']}", hook


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_a_rotated_secret_and_the_old_one_both_sign_for_a_day(app, api, receiver):
    r, port = await receiver()
    base, hook = await api_hook(app, api, f"http://127.0.0.1:{port}/in")
    old = hook["config"]["secret"]
    rotated = await api.post(f"{base}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["config"]["secret"]
    assert new != old and new.startswith("whsec_")
    assert rotated.json()["previousSecretExpiresAt"] is not None
    assert (await api.get(f"{base}/get")).json() == rotated.json()  # the old secret is never answered

    await api.post(f"{base}/test")
    assert await Worker(app.db, networks=LOOPBACK).run_once() == 1
    [(headers, body)] = r.requests
    # a receiver still on the old secret and one already on the new both verify it
    assert Webhook(old).verify(body, headers)["event"] == "hook.test"
    assert Webhook(new).verify(body, headers)["event"] == "hook.test"
    assert headers["x-smartsupp-hmac"] == hex_hmac(new, body)
    assert headers["x-smartsupp-hmac-previous"] == hex_hmac(old, body)

    async with app.db.transaction() as session:  # the day has passed
        await session.execute("UPDATE hooks SET previous_secret_until = previous_secret_until - 86401")
    assert (await api.get(f"{base}/get")).json()["previousSecretExpiresAt"] is None
    await api.post(f"{base}/test")
    assert await Worker(app.db, networks=LOOPBACK).run_once() == 1
    headers, body = r.requests[1]
    assert Webhook(new).verify(body, headers)["event"] == "hook.test"
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)
    assert "x-smartsupp-hmac-previous" not in headers


async def test_a_secret_given_in_an_update_or_a_rotation_is_a_rotation_too(app, api):
    base, hook = await api_hook(app, api, "http://127.0.0.1:9/")
    updated = await api.post(f"{base}/update", json={"config": {"url": "https://example.com/h",
                                                                 "secret": "partner-chosen-secret-1"}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["previousSecretExpiresAt"] is not None
    # an update that keeps the secret is no rotation: the grace already running is left as it is
    same = await api.post(f"{base}/update", json={"config": {"url": "https://example.com/other"}})
    assert same.json()["config"]["secret"] == "partner-chosen-secret-1"
    chosen = await api.post(f"{base}/rotate-secret", json={"secret": "another-chosen-secret"})
    assert chosen.json()["config"]["secret"] == "another-chosen-secret"
    refused = await api.post(f"{base}/rotate-secret", json={"secret": "another-chosen-secret"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "secret"
    short = await api.post(f"{base}/rotate-secret", json={"secret": "short"})
    assert short.status_code == 400
    assert (await api.post(f"{base.rsplit('/', 1)[0]}/999999/rotate-secret")).status_code == 404


async def test_a_hook_failing_for_days_is_deactivated_with_the_reason_shown(app, api, receiver):
    r, port = await receiver(statuses=[500, 500, 500])
    base, hook = await api_hook(app, api, f"http://127.0.0.1:{port}/in")
    await api.post(f"{base}/test")
    worker = Worker(app.db, networks=LOOPBACK, schedule=(0, 0, 0), disable_after=3 * 86400)
    assert await worker.run_once() == 1
    got = (await api.get(f"{base}/get")).json()
    assert (got["active"], got["disabledReason"]) == (True, None)  # one failure is no reason

    async with app.db.transaction() as session:  # it has been failing for three days
        await session.execute("UPDATE hooks SET failing_since = failing_since - 3 * 86400")
    assert await worker.run_once() == 1
    got = (await api.get(f"{base}/get")).json()
    assert got["active"] is False
    assert "HTTP 500" in got["disabledReason"] and "set active to true" in got["disabledReason"]

    # the partner fixes the receiver and turns the hook on again: the reason and the spell are gone
    back = (await api.post(f"{base}/update", json={"active": True})).json()
    assert (back["active"], back["disabledReason"]) == (True, None)
    assert await worker.run_once() == 1  # the third 500: a new spell starts now, far from three days
    assert (await api.get(f"{base}/get")).json()["active"] is True
    assert await worker.run_once() == 1  # and then it is delivered
    assert [d["status"] for d in (await api.get(f"{base}/deliveries")).json()["records"]] == ["delivered"]


async def test_a_delivered_attempt_ends_the_failing_spell(app, api, receiver):
    r, port = await receiver(statuses=[500])
    base, hook = await api_hook(app, api, f"http://127.0.0.1:{port}/in")
    await api.post(f"{base}/test")
    worker = Worker(app.db, networks=LOOPBACK, schedule=(0,), disable_after=3 * 86400)

    async def failing_since() -> int | None:
        async with app.db.read() as session:
            return await session.fetchval("SELECT failing_since FROM hooks WHERE id = $1", int(hook["id"]))

    assert await worker.run_once() == 1
    assert await failing_since() is not None
    assert await worker.run_once() == 1  # delivered
    assert await failing_since() is None


async def test_a_worker_killed_mid_batch_loses_nothing(db, database_url, receiver):
    """SIGKILL while the receiver holds a batch: every event arrives, each under its own
    webhook-id, and what the dead worker had claimed comes again, with the same id, once its
    lease runs out."""
    r, port = await receiver(delay=1.0)
    aid, hid, secret = await hook_to(db, f"http://127.0.0.1:{port}/in")
    sent = [await enqueue(db, aid, hid, {"n": n}) for n in range(30)]
    env = {**os.environ, "OPENSUPP_DATABASE_URL": database_url, "OPENSUPP_HOOK_ALLOW_NETWORKS": "127.0.0.1/32",
           "OPENSUPP_OUTBOX_LEASE_SECONDS": "3"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "opensupp", "worker", env=env,
                                                   stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(400):  # the worker has a batch in the receiver's hands
            if r.in_flight:
                break
            await asyncio.sleep(0.025)
        assert r.in_flight
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    async with db.read() as session:
        claimed = await session.fetchval("SELECT COUNT(*) FROM deliveries WHERE attempts > 0 AND status = 'pending'")
    assert claimed > 0  # the dead worker's claims: neither delivered nor recorded

    worker = Worker(db, networks=LOOPBACK)
    for _ in range(200):
        await worker.run_once()
        logged = await deliveries(db, aid, hid)
        if all(d.status == "delivered" for d in logged):
            break
        await asyncio.sleep(0.1)
    assert [d.status for d in logged] == ["delivered"] * 30
    await asyncio.sleep(1.1)  # requests the dead worker had started have all been answered
    received: dict[str, set[bytes]] = {}
    for headers, body in r.requests:
        assert Webhook(secret).verify(body, headers)
        received.setdefault(headers["webhook-id"], set()).add(body)
    assert set(received) == {d.webhook_id for d in sent}  # each event arrived
    assert all(len(bodies) == 1 for bodies in received.values())  # a repeat is the same event, same id
    assert len(r.requests) >= 30


async def test_the_log_keeps_ended_deliveries_for_its_days_and_pending_ones_until_they_end(db):
    aid, hid, _ = await hook_to(db, "http://127.0.0.1:9/in")
    kept, old_delivered, old_failed, old_pending = [await enqueue(db, aid, hid) for _ in range(4)]
    async with db.transaction() as session:
        for delivery, status in ((old_delivered, "delivered"), (old_failed, "failed"), (old_pending, "pending")):
            await session.execute("UPDATE deliveries SET status = $1, updated_at = updated_at - 31 * 86400, "
                                  "next_attempt_at = next_attempt_at + 3600 WHERE id = $2", status, delivery.id)
        await session.execute("UPDATE deliveries SET status = 'delivered', updated_at = updated_at - 29 * 86400 "
                              "WHERE id = $1", kept.id)
    assert await Worker(db, keep_days=30).purge() >= 2
    assert [d.id for d in await deliveries(db, aid, hid)] == [kept.id, old_pending.id]


async def test_the_server_stops_at_once_even_as_an_event_wakes_its_worker(database_url):
    """A shutdown that cancels the worker just as a committed enqueue wakes it (Python 3.11's
    wait_for would swallow that cancellation, and the shutdown wait forever)."""
    from opensupp.app import create_app
    from opensupp.outbox import service

    for _ in range(10):
        application = create_app(Settings(database_url=database_url, hook_allow_networks="127.0.0.1/32"))
        await application.startup()
        await asyncio.sleep(0.05)  # the worker waits for work
        for wake in list(service._wakers):
            wake.set()
        await asyncio.wait_for(application.shutdown(), 10)


class Dripper:
    """A receiver that answers its headers at once, then a byte of body every 0.4 s, forever
    (each read within the 10 s step timeout, the whole answer never)."""

    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.requests += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        while True:
            await send({"type": "http.response.body", "body": b".", "more_body": True})
            await asyncio.sleep(0.4)


async def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_deadline(db, receiver):
    dripper = Dripper()
    async with serving(dripper, lifespan="off", force=True) as port:
        aid, hid, _ = await hook_to(db, f"http://127.0.0.1:{port}/in")
        await enqueue(db, aid, hid)
        started = asyncio.get_running_loop().time()
        assert await Worker(db, networks=LOOPBACK, deadline=1.5).run_once() == 1
        assert asyncio.get_running_loop().time() - started < 5
        [logged] = await deliveries(db, aid, hid)
        assert (logged.status, logged.last_error) == ("pending", "no whole answer within 1.5 s")


async def test_a_nul_in_an_answer_is_stored_and_the_batch_recorded(db, receiver):
    """PostgreSQL's text holds no NUL: one receiver's answer with one must not leave a whole
    batch (another account's delivery with it) unrecorded and sent again and again."""
    evil, evil_port = await receiver(body=b"oops\x00")
    good, good_port = await receiver()
    evil_aid, evil_hid, _ = await hook_to(db, f"http://127.0.0.1:{evil_port}/in")
    good_aid, good_hid, _ = await hook_to(db, f"http://127.0.0.1:{good_port}/in")
    await enqueue(db, evil_aid, evil_hid)
    await enqueue(db, good_aid, good_hid)
    assert await Worker(db, networks=LOOPBACK).run_once() == 2
    [bad] = await deliveries(db, evil_aid, evil_hid)
    [fine] = await deliveries(db, good_aid, good_hid)
    assert (bad.status, bad.response, fine.status) == ("delivered", "oops\ufffd", "delivered")


async def test_a_delivery_claimed_again_and_again_with_nothing_recorded_fails(db):
    aid, hid, _ = await hook_to(db, "http://127.0.0.1:9/in")
    delivery = await enqueue(db, aid, hid)
    async with db.transaction() as session:  # claimed by workers that all died before recording
        await session.execute("UPDATE deliveries SET attempts = 8 WHERE id = $1", delivery.id)
    async with db.transaction() as session:
        from opensupp.outbox import service

        assert await service.claim_due(session, limit=10, lease=60) == []
    [logged] = await deliveries(db, aid, hid)
    assert (logged.status, logged.last_error) == ("failed", "no result recorded after 8 attempts")


async def test_a_slow_receiver_holds_half_the_slots_and_the_others_are_delivered(db, receiver):
    """One hook's receiver takes 3 s an answer and has 30 events due; another account's 5
    events, due after them, arrive within a second: the slow one holds at most half of the
    worker's slots."""
    slow, slow_port = await receiver(delay=3.0)
    fast, fast_port = await receiver()
    slow_aid, slow_hid, _ = await hook_to(db, f"http://127.0.0.1:{slow_port}/in")
    fast_aid, fast_hid, _ = await hook_to(db, f"http://127.0.0.1:{fast_port}/in")
    for _ in range(30):
        await enqueue(db, slow_aid, slow_hid)
    for _ in range(5):
        await enqueue(db, fast_aid, fast_hid)
    task = asyncio.create_task(Worker(db, networks=LOOPBACK).loop())
    try:
        for _ in range(40):
            await asyncio.sleep(0.05)
            if len(fast.requests) == 5:
                break
        assert len(fast.requests) == 5
        assert slow.most_in_flight <= 10 and slow.requests == []  # the slow ones are still being answered
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    async with db.transaction() as session:  # what the cancelled worker left in flight: not this test's to wait for
        await session.execute("UPDATE deliveries SET status = 'failed' WHERE status = 'pending'")
