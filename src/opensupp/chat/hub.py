"""The chat's fan-out between connections and server processes: one ``Hub`` interface, three
backends.

``publish(topic, event)`` sends an event (UTF-8 bytes, a JSON frame) to every subscriber of
the topic on every process; ``subscribe(topic, callback)`` calls ``callback(event)`` for each
(synchronously, in the event loop: a callback must not block; the transport queues the frame
on its sockets). Topics are ``<kind>:<id>[:<id>]`` (``visitor:12:Yq3...``, ``agents:12``,
``account:12``, ``presence:12``). A process subscribes to a topic on its backend once, however
many local callbacks it has, and unsubscribes when the last one goes.

Backends (``hub_for(settings)`` picks one):

- ``InProcessHub``: one process (the SQLite default); delivery is a function call.
- ``PostgresHub``: PostgreSQL LISTEN/NOTIFY on one dedicated asyncpg connection per process.
  Every topic goes over one channel (``opensupp_hub``) with the topic in the payload, and each
  process keeps the events of the topics it holds: PostgreSQL looks a notification's channel up
  in a process's list of channels one by one, which thousands of visitor topics would make slow.
  An event longer than NOTIFY's 8,000-byte payload is sent as numbered pieces in one statement
  (one transaction, so they arrive together and in order) and put together by the receivers.
- ``RedisHub``: Redis pub/sub (redis-py's asyncio client), a channel per topic
  (``opensupp:<topic>``), one subscriber connection per process.

Delivery is at most once: a process that loses its PostgreSQL or Redis connection reconnects
(backing off from 0.1 to 5 seconds) and subscribes again to every topic it holds, but what
was published meanwhile does not reach it. The chat protocol's replay ("after", docs/
chat-protocol.md section 4) gives clients the messages they missed; typing and presence are
current state that the next heartbeat restores. A publish while the backend is down waits up
to ``publish_wait`` seconds for it, then is dropped with a warning (the message itself is
already stored).

``Presence`` counts the agents online per account across processes without a table: each
process publishes its own agents' statuses per account on ``presence:<account>`` when they
change and every ``interval`` seconds, and keeps the others' in memory, forgetting a process
not heard from for ``expiry`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import orjson

log = logging.getLogger("opensupp.chat.hub")

Callback = Callable[[bytes], None]
#: a topic: a kind and one or more ids (letters, digits, ``_``, ``-``), ``:``-separated
TOPIC = re.compile(r"[a-z]+(?::[A-Za-z0-9_-]{1,64}){1,3}")
MAX_EVENT = 1 << 20
BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


def visitor_topic(account_id: int, vid: str) -> str:
    return f"visitor:{account_id}:{vid}"


def agents_topic(account_id: int) -> str:
    return f"agents:{account_id}"


def account_topic(account_id: int) -> str:
    return f"account:{account_id}"


def presence_topic(account_id: int) -> str:
    return f"presence:{account_id}"


class Subscription:
    """One local callback on a topic; ``close()`` ends it (idempotent)."""

    __slots__ = ("hub", "topic", "callback", "closed")

    def __init__(self, hub: Hub, topic: str, callback: Callback) -> None:
        self.hub = hub
        self.topic = topic
        self.callback = callback
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._remove(self)


class Hub(ABC):
    """What the transport and the services use; the backends fill in the ``_backend_*`` parts."""

    kind = "abstract"

    def __init__(self, publish_wait: float = 2.0) -> None:
        self.publish_wait = publish_wait
        self._local: dict[str, dict[Subscription, None]] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.connected = asyncio.Event()
        self.reconnects = 0  # how many times the backend connection was made again (tests, metrics)
        self.dropped = 0  # publishes dropped while the backend was down

    # ------------------------------------------------------------------ the interface

    async def start(self) -> None:  # noqa: B027  (the in-process hub has nothing to start)
        """Connect to the backend (returns when connected, or raises)."""

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        self._local.clear()

    async def publish(self, topic: str, event: bytes) -> None:
        _check_topic(topic)
        if len(event) > MAX_EVENT:
            raise ValueError(f"an event is at most {MAX_EVENT} bytes")
        await self._backend_publish(topic, event)

    async def subscribe(self, topic: str, callback: Callback) -> Subscription:
        """Calls ``callback(event)`` for every event published on ``topic`` from the moment this
        returns (the backend has confirmed the subscription) until the Subscription is closed."""
        _check_topic(topic)
        subscription = Subscription(self, topic, callback)
        subscribers = self._local.get(topic)
        if subscribers is None:
            self._local[topic] = {subscription: None}
            ready = self._ready[topic] = asyncio.get_running_loop().create_future()
            try:
                await self._backend_subscribe(topic)
            except Exception:
                log.warning("subscribing to %s failed; it is subscribed again on reconnect", topic, exc_info=True)
            finally:
                if not ready.done():
                    ready.set_result(None)
                if self._ready.get(topic) is ready:
                    del self._ready[topic]
        else:
            subscribers[subscription] = None
            pending = self._ready.get(topic)
            if pending is not None:
                await asyncio.shield(pending)
        return subscription

    async def messages(self, topic: str) -> AsyncIterator[bytes]:
        """The events of ``topic`` as an async iterator (a queue behind ``subscribe``)."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        subscription = await self.subscribe(topic, queue.put_nowait)
        try:
            while True:
                yield await queue.get()
        finally:
            subscription.close()

    def topics(self) -> list[str]:
        return list(self._local)

    # ------------------------------------------------------------------ for the backends

    def _deliver(self, topic: str, event: bytes) -> None:
        for subscription in tuple(self._local.get(topic, ())):
            try:
                subscription.callback(event)
            except Exception:
                log.exception("a subscriber of %s failed", topic)

    def _remove(self, subscription: Subscription) -> None:
        subscribers = self._local.get(subscription.topic)
        if subscribers is None:
            return
        subscribers.pop(subscription, None)
        if not subscribers:
            del self._local[subscription.topic]
            self._spawn(self._unsubscribe_later(subscription.topic))

    async def _unsubscribe_later(self, topic: str) -> None:
        if topic in self._local:  # subscribed again meanwhile
            return
        try:
            await self._backend_unsubscribe(topic)
        except Exception:
            log.debug("unsubscribing from %s failed (the connection is being made again)", topic, exc_info=True)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _wait_connected(self) -> bool:
        if self.connected.is_set():
            return True
        try:
            await asyncio.wait_for(self.connected.wait(), self.publish_wait)
            return True
        except TimeoutError:
            return False

    @abstractmethod
    async def _backend_publish(self, topic: str, event: bytes) -> None: ...

    async def _backend_subscribe(self, topic: str) -> None:  # noqa: B027  (most backends need nothing)
        """Make the backend send this process the topic's events (may raise when it is down)."""

    async def _backend_unsubscribe(self, topic: str) -> None:  # noqa: B027
        """Stop the backend sending the topic's events."""


def _check_topic(topic: str) -> None:
    if not TOPIC.fullmatch(topic):
        raise ValueError(f"not a hub topic: {topic!r}")


# --------------------------------------------------------------------------- in-process


class InProcessHub(Hub):
    """One process: ``publish`` calls the subscribers' callbacks."""

    kind = "inprocess"

    def __init__(self, publish_wait: float = 2.0) -> None:
        super().__init__(publish_wait)
        self.connected.set()

    async def _backend_publish(self, topic: str, event: bytes) -> None:
        self._deliver(topic, event)


# --------------------------------------------------------------------------- PostgreSQL


class PostgresHub(Hub):
    """LISTEN/NOTIFY on one dedicated connection (it also sends the NOTIFYs, one at a time)."""

    kind = "postgresql"
    CHANNEL = "opensupp_hub"
    #: NOTIFY's payload is below 8,000 bytes; room for the piece header and the topic
    PIECE = 7000

    def __init__(self, dsn: str, publish_wait: float = 2.0, health_interval: float = 5.0) -> None:
        super().__init__(publish_wait)
        self.dsn = dsn
        self.health_interval = health_interval
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._lost = asyncio.Event()
        self._pieces: dict[str, tuple[float, list[str | None]]] = {}
        self._ids = itertools.count()
        self._prefix = secrets.token_hex(4)

    async def start(self) -> None:
        await self._connect()
        self._spawn(self._supervise())

    async def close(self) -> None:
        await super().close()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend pid of the listening connection (tests kill it)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        conn.add_termination_listener(self._on_terminated)
        await conn.add_listener(self.CHANNEL, self._on_notify)
        self._conn = conn
        self._lost.clear()
        self.connected.set()

    def _on_terminated(self, conn: Any) -> None:
        if conn is self._conn:
            self._mark_lost()

    def _mark_lost(self) -> None:
        if self.connected.is_set():
            log.warning("the hub lost its PostgreSQL connection; connecting again")
        self.connected.clear()
        self._lost.set()

    async def _supervise(self) -> None:
        """Health checks while connected; on a loss, connects again until it works."""
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self.health_interval)
            except TimeoutError:
                if not await self._healthy():
                    self._mark_lost()
                    continue
                continue
            old, self._conn = self._conn, None
            if old is not None:
                old.terminate()
            for attempt in itertools.count():
                try:
                    await self._connect()
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    log.debug("hub reconnect failed: %s", exc)
                    await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                    continue
                self.reconnects += 1
                log.warning("the hub's PostgreSQL connection is back")
                break

    async def _healthy(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            async with self._lock:
                await conn.fetchval("SELECT 1", timeout=self.health_interval)
            return True
        except Exception:
            return False

    async def _backend_publish(self, topic: str, event: bytes) -> None:
        text = event.decode("utf-8")
        pieces = self._split(topic, text)
        for attempt in range(2):
            if not await self._wait_connected() or self._conn is None:
                break
            conn = self._conn
            try:
                async with self._lock:
                    if len(pieces) == 1:
                        await conn.execute("SELECT pg_notify($1, $2)", self.CHANNEL, pieces[0], timeout=5)
                    else:  # one statement: one transaction, so the pieces arrive together, in order
                        await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) "
                                           "ORDER BY n", self.CHANNEL, pieces, timeout=5)
                return
            except Exception as exc:  # OSError, PostgresError, InterfaceError, InternalClientError on a dying link
                log.debug("hub publish failed (attempt %d): %s", attempt + 1, exc)
                if conn is self._conn:
                    self._mark_lost()
        self.dropped += 1
        log.warning("the hub dropped an event for %s: PostgreSQL is unreachable", topic)

    def _split(self, topic: str, text: str) -> list[str]:
        """NOTIFY payloads: ``=topic\\n<event>``, or ``+id n count topic\\n<piece>`` pieces of at most
        PIECE bytes, cut between characters (a payload must be valid text)."""
        if len(text) * 4 <= self.PIECE or len(text.encode()) <= self.PIECE:
            return [f"={topic}\n{text}"]
        raw = text.encode()
        cuts = [0]
        while len(raw) - cuts[-1] > self.PIECE:
            end = cuts[-1] + self.PIECE
            while raw[end] & 0xC0 == 0x80:  # inside a UTF-8 sequence: back to its start
                end -= 1
            cuts.append(end)
        cuts.append(len(raw))
        ident = f"{self._prefix}{next(self._ids)}"
        count = len(cuts) - 1
        return [f"+{ident} {n} {count} {topic}\n{raw[cuts[n]:cuts[n + 1]].decode()}" for n in range(count)]

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        head, _, body = payload.partition("\n")
        if head.startswith("="):
            topic = head[1:]
            if topic in self._local:
                self._deliver(topic, body.encode())
            return
        try:
            ident, n_text, count_text, topic = head[1:].split(" ")
            n, count = int(n_text), int(count_text)
        except ValueError:
            log.warning("a hub notification that is not ours: %.60r", payload)
            return
        if topic not in self._local:
            return
        now = time.monotonic()
        for stale in [key for key, (at, _) in self._pieces.items() if now - at > 30]:
            del self._pieces[stale]
        started, parts = self._pieces.setdefault(ident, (now, [None] * count))
        if n >= len(parts):
            return
        parts[n] = body
        if all(part is not None for part in parts):
            del self._pieces[ident]
            self._deliver(topic, "".join(part for part in parts if part is not None).encode())


# --------------------------------------------------------------------------- Redis


class RedisHub(Hub):
    """Redis pub/sub: a client (its pool) publishes; one PubSub connection subscribes, read by one task."""

    kind = "redis"
    PREFIX = "opensupp:"

    def __init__(self, url: str, publish_wait: float = 2.0, health_interval: float = 5.0) -> None:
        super().__init__(publish_wait)
        import redis.asyncio as redis

        self.url = url
        self.health_interval = health_interval
        self._redis = redis
        #: the connections' CLIENT SETNAME (operators see whose they are; tests find them)
        self.client_name = f"opensupp-hub-{secrets.token_hex(4)}"
        self._client = redis.from_url(url, socket_connect_timeout=5, socket_timeout=5, client_name=self.client_name)
        self._pubsub: Any = None
        self._lock = asyncio.Lock()
        self._confirming: dict[str, list[asyncio.Future[None]]] = {}

    async def start(self) -> None:
        await self._connect()
        self._spawn(self._read())

    async def close(self) -> None:
        await super().close()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._client.aclose()

    async def _connect(self) -> None:
        """A new subscriber connection, subscribed to every topic this process holds."""
        pubsub = self._client.pubsub()
        # the channel of no topic keeps the connection subscribed (and readable) when no topic is held
        channels = [self.PREFIX + "_", *(self.PREFIX + topic for topic in self._local)]
        try:
            async with self._lock:
                await pubsub.subscribe(*channels)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        old, self._pubsub = self._pubsub, pubsub
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()
        self.connected.set()

    async def _read(self) -> None:
        errors = (OSError, TimeoutError, self._redis.ConnectionError, self._redis.TimeoutError)
        quiet_since = time.monotonic()
        attempt = 0
        while True:
            if not self.connected.is_set():
                try:
                    await self._connect()
                except errors as exc:
                    log.debug("hub reconnect failed: %s", exc)
                    await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                    attempt += 1
                    continue
                attempt = 0
                self.reconnects += 1
                log.warning("the hub's Redis connection is back")
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                if message is None:
                    if time.monotonic() - quiet_since > self.health_interval:
                        quiet_since = time.monotonic()
                        async with self._lock:
                            await asyncio.wait_for(self._pubsub.ping(), self.health_interval)
                    continue
                quiet_since = time.monotonic()
            except errors as exc:
                log.warning("the hub lost its Redis connection (%s); connecting again", exc)
                self.connected.clear()
                continue
            kind = message.get("type")
            channel = message.get("channel") or b""
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            if kind == "subscribe":  # Redis has it: what is published from now on reaches us
                for waiter in self._confirming.pop(name, ()):
                    if not waiter.done():
                        waiter.set_result(None)
                continue
            if kind != "message":
                continue
            topic = name[len(self.PREFIX):]
            data = message["data"]
            self._deliver(topic, data if isinstance(data, bytes) else str(data).encode())

    async def _backend_publish(self, topic: str, event: bytes) -> None:
        errors = (OSError, TimeoutError, self._redis.ConnectionError, self._redis.TimeoutError)
        for attempt in range(3):
            try:
                await self._client.publish(self.PREFIX + topic, event)
                return
            except errors as exc:
                log.debug("hub publish failed (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(BACKOFF[attempt])
        self.dropped += 1
        log.warning("the hub dropped an event for %s: Redis is unreachable", topic)

    async def _backend_subscribe(self, topic: str) -> None:
        """SUBSCRIBE, and wait (up to publish_wait) for Redis to confirm it: from then on a
        publish from any connection reaches this process."""
        if self.connected.is_set() and self._pubsub is not None:
            channel = self.PREFIX + topic
            confirmed = asyncio.get_running_loop().create_future()
            self._confirming.setdefault(channel, []).append(confirmed)
            try:
                async with self._lock:
                    await self._pubsub.subscribe(channel)
                await asyncio.wait_for(asyncio.shield(confirmed), self.publish_wait)
            except TimeoutError:
                log.warning("Redis did not confirm the subscription to %s in time", topic)
            finally:
                waiters = self._confirming.get(channel)
                if waiters is not None and confirmed in waiters:
                    waiters.remove(confirmed)
                    if not waiters:
                        del self._confirming[channel]

    async def _backend_unsubscribe(self, topic: str) -> None:
        if self.connected.is_set() and self._pubsub is not None:
            async with self._lock:
                await self._pubsub.unsubscribe(self.PREFIX + topic)


# --------------------------------------------------------------------------- choice


def hub_for(database_url: str, redis_url: str | None = None, publish_wait: float = 2.0) -> Hub:
    """Redis when ``redis_url`` (OPENSUPP_REDIS_URL) is set, else PostgreSQL's LISTEN/NOTIFY when
    the database is PostgreSQL, else in-process. Not started: ``await hub.start()``."""
    from opensupp.db import parse_url

    if redis_url:
        return RedisHub(redis_url, publish_wait=publish_wait)
    kind, target = parse_url(database_url)
    if kind == "postgresql":
        return PostgresHub(target, publish_wait=publish_wait)
    return InProcessHub(publish_wait=publish_wait)


# --------------------------------------------------------------------------- presence


STATUS_RANK = {"offline": 0, "away": 1, "online": 2}


class Presence:
    """Agents' statuses per account, on every process, through the hub (no table).

    ``set(account, connection, user, status)`` / ``drop(account, connection)`` record this
    process's agent connections; ``agents(account)`` merges them with what the other processes
    announced (a user's best status over its connections); ``watch(account)`` starts receiving
    an account's announcements (and asks the other processes for theirs at once).
    ``on_change(account)`` is called when an account's merged statuses may have changed.
    """

    def __init__(self, hub: Hub, interval: float = 10.0, expiry: float = 30.0,
                 on_change: Callable[[int], None] | None = None) -> None:
        self.hub = hub
        self.interval = interval
        self.expiry = expiry
        self.on_change = on_change
        self.process = secrets.token_hex(6)
        self._local: dict[int, dict[object, tuple[int, str]]] = {}
        self._remote: dict[int, dict[str, tuple[float, dict[int, str]]]] = {}
        self._watched: dict[int, Subscription] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for subscription in self._watched.values():
            subscription.close()
        self._watched.clear()

    async def watch(self, account_id: int) -> None:
        if account_id in self._watched:
            return
        self._watched[account_id] = await self.hub.subscribe(
            presence_topic(account_id), lambda event: self._heard(account_id, event))
        await self.hub.publish(presence_topic(account_id), orjson.dumps({"p": self.process, "query": True}))

    def unwatch(self, account_id: int) -> None:
        subscription = self._watched.pop(account_id, None)
        if subscription is not None:
            subscription.close()
        self._remote.pop(account_id, None)

    def watched(self) -> list[int]:
        return list(self._watched)

    async def set(self, account_id: int, connection: object, user_id: int, status: str) -> None:
        before = self._mine(account_id)
        self._local.setdefault(account_id, {})[connection] = (user_id, status)
        await self._announce_if_changed(account_id, before)

    async def drop(self, account_id: int, connection: object) -> None:
        before = self._mine(account_id)
        connections = self._local.get(account_id)
        if connections is not None:
            connections.pop(connection, None)
            if not connections:
                del self._local[account_id]
        await self._announce_if_changed(account_id, before)

    def agents(self, account_id: int) -> dict[int, str]:
        """user id -> best status of the account's agents on all processes (offline ones left out)."""
        merged = dict(self._mine(account_id))
        now = time.monotonic()
        for heard_at, statuses in self._remote.get(account_id, {}).values():
            if now - heard_at > self.expiry:
                continue
            for user_id, status in statuses.items():
                if STATUS_RANK.get(status, 0) > STATUS_RANK.get(merged.get(user_id, "offline"), 0):
                    merged[user_id] = status
        return {user_id: status for user_id, status in merged.items() if status != "offline"}

    def online(self, account_id: int) -> bool:
        return "online" in self.agents(account_id).values()

    # ------------------------------------------------------------------ inside

    def _mine(self, account_id: int) -> dict[int, str]:
        best: dict[int, str] = {}
        for user_id, status in self._local.get(account_id, {}).values():
            if STATUS_RANK.get(status, 0) > STATUS_RANK.get(best.get(user_id, "offline"), -1):
                best[user_id] = status
        return best

    async def _announce_if_changed(self, account_id: int, before: dict[int, str]) -> None:
        if self._mine(account_id) != before:
            await self._announce(account_id)
            self._changed(account_id)

    async def _announce(self, account_id: int) -> None:
        event = {"p": self.process, "agents": {str(k): v for k, v in self._mine(account_id).items()}}
        await self.hub.publish(presence_topic(account_id), orjson.dumps(event))

    def _heard(self, account_id: int, raw: bytes) -> None:
        try:
            event = orjson.loads(raw)
            process = str(event["p"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if process == self.process:
            return
        if event.get("query"):
            if self._local.get(account_id):
                self.hub._spawn(self._announce(account_id))
            return
        try:
            statuses = {int(k): str(v) for k, v in dict(event.get("agents") or {}).items()}
        except (TypeError, ValueError):
            return
        remote = self._remote.setdefault(account_id, {})
        previous = remote.get(process)
        if statuses:
            remote[process] = (time.monotonic(), statuses)
        else:
            remote.pop(process, None)
        if previous is None or previous[1] != statuses:
            self._changed(account_id)

    def _changed(self, account_id: int) -> None:
        if self.on_change is not None:
            try:
                self.on_change(account_id)
            except Exception:
                log.exception("a presence change handler failed")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for account_id in list(self._local):
                try:
                    await self._announce(account_id)
                except Exception:
                    log.debug("presence announce failed", exc_info=True)
            now = time.monotonic()
            for account_id, processes in list(self._remote.items()):
                gone = [p for p, (heard_at, _) in processes.items() if now - heard_at > self.expiry]
                for process in gone:
                    del processes[process]
                if gone:
                    self._changed(account_id)
