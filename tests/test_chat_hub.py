"""The chat hub (opensupp.chat.hub): events relayed between two hubs on separate connections
(two processes' worth) through a real PostgreSQL (LISTEN/NOTIFY) and a real Redis (pub/sub),
subscriptions kept across a killed connection, NOTIFY's payload limit, and agent presence
counted across hubs."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from conftest import POSTGRES_URL
from opensupp.chat.hub import Hub, InProcessHub, PostgresHub, Presence, RedisHub, hub_for
from opensupp.db import parse_url

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("OPENSUPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_or_skip() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("OPENSUPP_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc!r})", pytrace=False)
        pytest.skip(f"Redis at {REDIS_URL} is not reachable ({exc!r})")


def _make(kind: str) -> Hub:
    if kind == "postgresql":
        return PostgresHub(parse_url(POSTGRES_URL)[1], health_interval=1.0)
    _redis_or_skip()
    return RedisHub(REDIS_URL, health_interval=1.0)


@pytest.fixture(params=["postgresql", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Hub, Hub]]:
    """Two hubs of one backend, each with its own connection: two server processes."""
    first, second = _make(request.param), _make(request.param)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def topic() -> str:
    return f"visitor:{secrets.randbelow(10**6)}:{secrets.token_urlsafe(16)}"


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def test_an_event_reaches_the_subscribers_of_its_topic_on_the_other_hub_only(pair):
    first, second = pair
    mine, other = topic(), topic()
    got: list[bytes] = []
    got_other: list[bytes] = []
    await second.subscribe(mine, got.append)
    await second.subscribe(other, got_other.append)
    for n in range(20):
        await first.publish(mine, b'{"n":%d}' % n)
    await until(lambda: len(got) == 20)
    assert got == [b'{"n":%d}' % n for n in range(20)]  # in order
    assert got_other == []


async def test_a_closed_subscription_gets_nothing_and_the_others_still_do(pair):
    first, second = pair
    name = topic()
    a: list[bytes] = []
    b: list[bytes] = []
    sub_a = await second.subscribe(name, a.append)
    await second.subscribe(name, b.append)
    await first.publish(name, b"1")
    await until(lambda: a == [b"1"] and b == [b"1"])
    sub_a.close()
    await first.publish(name, b"2")
    await until(lambda: b == [b"1", b"2"])
    await asyncio.sleep(0.2)
    assert a == [b"1"]


async def test_events_over_notify_limit_arrive_whole(pair):
    first, second = pair
    name = topic()
    got: list[bytes] = []
    await second.subscribe(name, got.append)
    big = ('{"text":"' + "žluťoučký kůň 🐴 " * 2000 + '"}').encode()  # ~50 KB, multi-byte characters
    await first.publish(name, big)
    await first.publish(name, b"after")
    await until(lambda: len(got) == 2)
    assert got == [big, b"after"]


async def test_the_hub_subscribes_again_after_its_connection_is_killed(pair):
    first, second = pair
    names = [topic() for _ in range(3)]
    got: dict[str, list[bytes]] = {name: [] for name in names}
    for name in names:
        await second.subscribe(name, got[name].append)
    await first.publish(names[0], b"before")
    await until(lambda: got[names[0]] == [b"before"])

    await _kill_subscriber_connection(second)
    await until(lambda: second.reconnects >= 1 and second.connected.is_set(), timeout=15)

    # every topic it held still reaches it, and the killed hub can still publish
    for name in names:
        await first.publish(name, b"after")
    await second.publish(names[1], b"from-second")
    await until(lambda: all(got[name][-1:] in ([b"after"], [b"from-second"]) for name in names)
                and got[names[1]][-2:] == [b"after", b"from-second"], timeout=10)


async def _kill_subscriber_connection(hub: Hub) -> None:
    if isinstance(hub, PostgresHub):
        pid = hub.backend_pid
        conn = await asyncpg.connect(parse_url(POSTGRES_URL)[1])
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()
    else:
        import redis.asyncio as redis

        assert isinstance(hub, RedisHub)
        admin = redis.from_url(REDIS_URL)
        try:
            clients = await admin.client_list(_type="pubsub")
            ids = [c["id"] for c in clients if c.get("name") == hub.client_name]
            assert ids
            for client_id in ids:
                await admin.execute_command("CLIENT", "KILL", "ID", client_id)
        finally:
            await admin.aclose()


async def test_a_publish_while_postgresql_is_away_waits_for_the_reconnect():
    first, second = _make("postgresql"), _make("postgresql")
    await first.start()
    await second.start()
    try:
        name = topic()
        got: list[bytes] = []
        await second.subscribe(name, got.append)
        await _kill_subscriber_connection(first)  # the publisher's own connection this time
        await first.publish(name, b"published across the reconnect")
        await until(lambda: got == [b"published across the reconnect"])
    finally:
        await first.close()
        await second.close()


async def test_in_process_hub_and_the_choice_by_settings():
    hub = InProcessHub()
    name = topic()
    got: list[bytes] = []
    sub = await hub.subscribe(name, got.append)
    await hub.publish(name, b"x")
    assert got == [b"x"]
    sub.close()
    await hub.publish(name, b"y")
    assert got == [b"x"]
    with pytest.raises(ValueError):
        await hub.publish("no spaces allowed", b"x")
    await hub.close()

    assert isinstance(hub_for("sqlite:////tmp/x.db"), InProcessHub)
    assert isinstance(hub_for(POSTGRES_URL), PostgresHub)
    assert isinstance(hub_for(POSTGRES_URL, redis_url=REDIS_URL), RedisHub)
    assert isinstance(hub_for("sqlite:////tmp/x.db", redis_url=REDIS_URL), RedisHub)


async def test_messages_iterates_a_topic(pair):
    first, second = pair
    name = topic()
    iterator = second.messages(name)
    receiving = asyncio.ensure_future(iterator.__anext__())
    await until(lambda: name in second.topics())
    await asyncio.sleep(0.1)
    await first.publish(name, b"one")
    assert await asyncio.wait_for(receiving, 5) == b"one"
    await iterator.aclose()
    assert name not in second.topics()


async def test_presence_counts_agents_across_processes_and_forgets_a_dead_one(pair):
    first, second = pair
    account = secrets.randbelow(10**6)
    changes: list[int] = []
    p1 = Presence(first, interval=0.3, expiry=1.0)
    p2 = Presence(second, interval=0.3, expiry=1.0, on_change=changes.append)
    p1.start()
    p2.start()
    try:
        await p1.watch(account)
        await p2.watch(account)
        conn_a, conn_b = object(), object()
        await p1.set(account, conn_a, 5, "online")
        await until(lambda: p2.agents(account) == {5: "online"})
        assert p2.online(account) and changes
        await p1.set(account, conn_b, 5, "away")  # a second tab of the same agent: the best status counts
        await p1.set(account, conn_a, 5, "away")
        await until(lambda: p2.agents(account) == {5: "away"})
        assert not p2.online(account)
        await p2.set(account, object(), 6, "online")
        await until(lambda: p1.agents(account) == {5: "away", 6: "online"})

        # a process that joins late asks and hears at once (not at the next heartbeat)
        late = Presence(first, interval=60, expiry=120)
        await late.watch(account)
        await until(lambda: late.agents(account) == {5: "away", 6: "online"}, timeout=2)
        late.unwatch(account)

        await p1.drop(account, conn_a)
        await p1.drop(account, conn_b)
        await until(lambda: p2.agents(account) == {6: "online"})

        # a process that stops announcing (it died) is forgotten after `expiry`
        await p1.set(account, conn_a, 7, "online")
        await until(lambda: 7 in p2.agents(account))
        await p1.close()
        await until(lambda: 7 not in p2.agents(account), timeout=5)
    finally:
        await p1.close()
        await p2.close()
