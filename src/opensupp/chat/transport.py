"""The chat's realtime endpoints (docs/chat-protocol.md): WebSockets for visitors and agents,
the same frames over HTTP long-polling, connection bookkeeping, heartbeat, rate limits, and
the fan-out of every event through the hub (opensupp.chat.hub) to whichever process holds
the sockets.

The transport stores nothing itself: it calls the chat service through ``ChatCore``, a narrow
async interface whose answers are already in the protocol's wire shapes (camelCase dicts,
section 2.2). The service's adapter implements it over the database; tests implement it in
memory (tests/chat_memory.py). Anything else that stores a message or closes a conversation
(the partner API) tells the sockets through ``ChatEvents`` on the same hub.

``chat_routes(site)`` is the list of Starlette routes the web pages mount (site/app.py); the
transport starts its hub and presence on the first connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from opensupp.chat import protocol as p
from opensupp.chat.hub import Hub, Presence, Subscription, account_topic, agents_topic, hub_for, visitor_topic
from opensupp.errors import Conflict, DomainError, NotFound, Unavailable, ValidationFailed
from opensupp.mail.service import TranscriptLimited, TranscriptSent
from opensupp.timeutil import iso

if TYPE_CHECKING:
    from opensupp.chat.firing import Firing
    from opensupp.config import Settings

log = logging.getLogger("opensupp.chat")

Json = dict[str, Any]
#: the visitor's own view of itself (the service's visitor dict has the agents' fields too)
#: visitor.connected frames per hub event in a roll call
ROLLCALL_BATCH = 50
VISITOR_VIEW = ("vid", "name", "email", "phone", "lang", "group", "variables", "visits", "chats")


# --------------------------------------------------------------------------- the service seam


@dataclass(frozen=True, slots=True)
class Page:
    """Where a visitor is, and what its connection says about it."""

    url: str | None = None
    title: str | None = None
    referrer: str | None = None
    origin: str | None = None  # the WebSocket's (or poll's) Origin header: the site's domain
    user_agent: str | None = None
    address: str | None = None


class ChatCore(Protocol):
    """The chat service as the transport needs it; every answer is in the wire shapes of
    docs/chat-protocol.md 2.2. Not-found cases answer None; refusals raise opensupp.errors'
    DomainErrors (NotFound, Conflict for a closed conversation, ValidationFailed, Unavailable)."""

    async def account_by_key(self, key: str) -> int | None:
        """The id of the account with this public accountKey."""

    async def office_hours_open(self, account_id: int) -> bool:
        """Whether the account's office hours are open now (online needs an agent too)."""

    async def connect_visitor(self, account_id: int, vid: str, values: Json, page: Page) -> tuple[Json, Json | None]:
        """Records a visit of ``vid`` (creating the visitor when the vid is new: the transport
        makes vids), applying ``values`` (name, email, phone, lang, group, variables; only those
        given) and the page view; answers (the visitor in the agents' view, its open conversation)."""

    async def update_visitor(self, account_id: int, vid: str, values: Json) -> Json:
        """Applies ``values``; answers the visitor (agents' view)."""

    async def page_view(self, account_id: int, vid: str, page: Page) -> Json:
        """Records a page view; answers the visitor (agents' view)."""

    async def visitor_left(self, account_id: int, vid: str) -> None:
        """The visitor's last connection on this process ended (its next visit counts from now)."""

    async def post_visitor_message(self, account_id: int, vid: str, text: str, client_id: str,
                                   offline: bool) -> tuple[Json, Json]:
        """Stores a visitor message in its open conversation (opening one), at most once per
        (conversation, client_id): a repeat answers the first message. (message, conversation)."""

    async def post_agent_message(self, account_id: int, user_id: int, conversation_id: int, text: str,
                                 client_id: str) -> tuple[Json, Json] | None:
        """As the visitor's, as that agent; None when the conversation is not the account's."""

    async def post_agent_message_to_visitor(self, account_id: int, user_id: int, vid: str, text: str,
                                            client_id: str) -> tuple[Json, Json] | None:
        """As that agent, to the visitor ``vid``: into its current conversation, or a new one the
        message opens (a proactive chat); None when the visitor is not the account's."""

    async def reply_to_visitor(self, account_id: int, user_id: int, vid: str, text: str,
                               client_id: str | None) -> tuple[Json, Json]:
        """(message, conversation) in the visitor's conversation that is not closed; NotFound,
        Conflict (it ended), ValidationFailed (the XMPP bridge)."""

    async def messages_after(self, account_id: int, after: int | None, limit: int,
                             vid: str | None = None) -> list[Json]:
        """Messages with id > after, oldest first, at most ``limit``: of the visitor's
        conversations when ``vid`` is given, else of the account. ``after`` None: the visitor's
        open conversation (its last ``limit``); for an account, nothing."""

    async def conversation(self, account_id: int, conversation_id: int) -> Json | None: ...

    async def open_conversations(self, account_id: int) -> list[Json]:
        """Pending and open conversations, each with ``lastMessage``."""

    async def read(self, account_id: int, last_message_id: int | None, *, vid: str | None = None,
                   conversation_id: int | None = None, user_id: int | None = None) -> Json | None:
        """The visitor (``vid``: its open conversation) or an agent (``user_id``, ``conversation_id``)
        has read up to ``last_message_id`` (None: all); answers the conversation."""

    async def close_conversation(self, account_id: int, *, vid: str | None = None,
                                 conversation_id: int | None = None, user_id: int | None = None) -> Json | None:
        """Closes the visitor's open conversation (``vid``) or an agent's (``conversation_id``,
        ``user_id``); None when there is none. Answers the closed conversation."""

    async def rate_conversation(self, account_id: int, vid: str, value: int, text: str | None) -> Json | None:
        """Rates the visitor's last conversation; None when it has none."""

    async def send_transcript(self, account_id: int, vid: str, email: str | None, lang: str | None) -> Json:
        """Mails the visitor's latest conversation (``{"conversationId", "email"}``); NotFound
        without one, ValidationFailed without an e-mail, mail.service's TranscriptSent and
        TranscriptLimited over its limits."""

    async def assign_conversation(self, account_id: int, conversation_id: int, user_id: int | None) -> Json | None:
        """Assigns the conversation (None: unassigns); None when it is not the account's."""

    async def agent(self, account_id: int, user_id: int) -> Json | None:
        """``{"id", "nickname", "avatar"}`` of a user of the account, else None."""

    async def signed_in(self, account_id: int, user_id: int, signin: str) -> bool:
        """Whether the dashboard sign-in ``signin`` (an agent token's) still holds: the user is
        there, the password unchanged, the session not signed out."""


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True, slots=True)
class Limits:
    """docs/chat-protocol.md section 6 (per server process)."""

    visitor_messages: tuple[float, float] = (1.0, 10)  # (per second, burst)
    address_messages: tuple[float, float] = (5.0, 50)
    visitor_frames: tuple[float, float] = (10.0, 40)
    agent_frames: tuple[float, float] = (100.0, 200)
    address_new_visitors: tuple[float, float] = (1.0, 60)
    address_transcripts: tuple[float, float] = (1 / 60, 5)  # chat.transcript (the database limits it too)
    connections_per_address: int = 200
    refused_in_a_row: int = 50
    idle_seconds: float = 75.0
    connect_seconds: float = 10.0
    poll_hold_seconds: float = 25.0
    poll_session_seconds: float = 60.0
    max_outbox: int = 2000
    sweep_seconds: float = 5.0
    #: how often an agent connection's dashboard sign-in is checked (it ends with its session)
    signin_check_seconds: float = 30.0


def transcript_bucket_key(address: str) -> str:
    """The ``chat.transcript`` bucket of a client address: an IPv6 address's /64 (one host
    commonly holds a whole /64, so per address would be no limit), an IPv4 address itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # "unknown", a test client's name
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Bucket:
    """A token bucket: ``take()`` answers 0 when allowed, else the seconds until it would be."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def full(self) -> bool:
        return self.tokens + (time.monotonic() - self.stamp) * self.rate >= self.burst


class Buckets:
    """Buckets by key, forgotten once full again (``sweep``)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.by_key: dict[Any, Bucket] = {}

    def take(self, key: Any) -> float:
        bucket = self.by_key.get(key)
        if bucket is None:
            bucket = self.by_key[key] = Bucket(self.rate, self.burst)
        return bucket.take()

    def sweep(self) -> None:
        for key in [key for key, bucket in self.by_key.items() if bucket.full()]:
            del self.by_key[key]


# --------------------------------------------------------------------------- connections


class Closed(Exception):
    """Ends a connection: the close code and reason sent."""

    def __init__(self, code: int, reason: str = "", error: Json | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.error = error  # a server.error frame sent before the close


class Connection:
    """One client connection (a WebSocket, or a long-poll session): who it is, its
    subscriptions, its outbox, its limits. Frames to send go through ``push`` in order."""

    __slots__ = ("transport", "side", "account_id", "vid", "user_id", "agent", "status", "page", "address",
                 "subscriptions", "outbox", "held", "last_seen", "frames", "refused", "conversation_ids",
                 "conversation_id", "closing", "sink", "socket_closed", "wake", "sender", "closer", "sid",
                 "visitor", "signin")

    def __init__(self, transport: ChatTransport, side: p.Side, address: str, page: Page) -> None:
        self.transport = transport
        self.side = side
        self.account_id: int | None = None
        self.vid: str | None = None
        self.user_id: int | None = None
        self.agent: Json | None = None
        self.signin: str | None = None  # agent: the dashboard sign-in its token is bound to
        self.status = "online"
        self.page = page
        self.address = address
        self.subscriptions: list[Any] = []
        self.outbox: list[bytes] = []
        self.held: list[bytes] | None = None
        self.last_seen = time.monotonic()
        limits = transport.limits
        self.frames = Bucket(*(limits.visitor_frames if side == "visitor" else limits.agent_frames))
        self.refused = 0
        self.conversation_ids: dict[int, str] | None = None  # agent: conversation id -> vid, as looked up
        self.conversation_id: int | None = None  # visitor: its open conversation, as known
        self.closing: Closed | None = None
        self.sink: Send | None = None  # a WebSocket's ASGI send
        self.socket_closed = False
        self.wake: asyncio.Event | None = None
        self.sender: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None
        self.sid: str | None = None
        self.visitor: Json | None = None  # visitor: as agents saw it at the connect, with its updates since

    # ------------------------------------------------------------------ sending

    def push(self, data: bytes) -> None:
        """Queue an encoded frame from the hub (held back while the connect is answered). A
        batch (``ChatEvents.batch``) is frames joined by newlines after a leading one."""
        if data.startswith(b"\n"):
            for part in batch_frames(data):
                self.push(part)
            return
        if self.held is not None:
            self.held.append(data)
            return
        self._queue(data)

    def send(self, frame: Json) -> None:
        self._queue(p.encode(frame))

    def _queue(self, data: bytes) -> None:
        if self.closing is not None:
            return
        if len(self.outbox) >= self.transport.limits.max_outbox:
            self.close(p.CLOSE_TRY_LATER, "too slow: frames were piling up")
            return
        self.outbox.append(data)
        if self.wake is not None:
            self.wake.set()
        elif self.sink is not None and self.sender is None:
            self.sender = asyncio.get_running_loop().create_task(self._drain())

    def release(self) -> None:
        """The connect is answered: what the hub brought meanwhile follows it."""
        held, self.held = self.held, None
        for data in held or ():
            self._queue(data)

    async def _drain(self) -> None:
        sink = self.sink
        try:
            while self.outbox and sink is not None and not self.socket_closed:
                batch, self.outbox = self.outbox, []
                for data in batch:
                    await sink({"type": "websocket.send", "text": data.decode()})
        except Exception:  # the socket went away under us: the receive loop ends it
            self.outbox = []
        finally:
            self.sender = None

    def close(self, code: int, reason: str = "") -> None:
        if self.closing is None:
            self.closing = Closed(code, reason)
            if self.sink is not None:
                self.closer = self.transport._spawn(_close_socket(self.sink, code, reason, self))
            if self.wake is not None:
                self.wake.set()

    def take_all(self) -> list[Json]:
        frames = [orjson.loads(data) for data in self.outbox]
        self.outbox = []
        return frames


async def _close_socket(send: Send, code: int, reason: str, connection: Connection) -> None:
    if connection.sender is not None:  # what was queued before the close goes first
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(connection.sender), 2)
    if not connection.socket_closed:
        connection.socket_closed = True
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code, "reason": reason})


class _SocketEndpoint:
    """A raw ASGI app for one side's WebSocket route (Starlette hands an ASGI app the scope as
    it is: no WebSocket object, no extra wrappers held for the connection's whole life)."""

    def __init__(self, transport: ChatTransport, side: p.Side) -> None:
        self.transport = transport
        self.side: p.Side = side

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One WebSocket: accept, the frames in order, the close. One coroutine holds an idle
        connection (its frame is what the connection costs, with the Connection)."""
        if (await receive())["type"] != "websocket.connect":
            return
        transport, side = self.transport, self.side
        client = scope.get("client")
        address = client[0] if client else "unknown"
        await send({"type": "websocket.accept"})  # then closed: the client sees the code (a refused upgrade: 403)
        if transport.per_address[address] >= transport.limits.connections_per_address:
            await send({"type": "websocket.close", "code": p.CLOSE_TRY_LATER,
                        "reason": "too many connections from this address"})
            return
        connection = Connection(transport, side, address, _page_of_scope(scope, address))
        connection.sink = send
        transport._enter(connection)
        connect_seconds = transport.limits.connect_seconds
        try:
            await transport.start()
            if side == "visitor":
                connection.account_id = await transport._account_of(_query_key(scope))
            while connection.closing is None:
                if connection.vid is None and connection.user_id is None:
                    try:
                        message = await asyncio.wait_for(receive(), connect_seconds)
                    except TimeoutError:
                        raise Closed(p.CLOSE_POLICY, "no connect frame") from None
                else:
                    message = await receive()
                if message["type"] == "websocket.disconnect":
                    connection.socket_closed = True
                    return
                text = message.get("text")
                if text is None:
                    raise Closed(p.CLOSE_BINARY, "frames are text")
                if len(text) > p.MAX_FRAME // 4 and len(text.encode()) > p.MAX_FRAME:
                    raise Closed(p.CLOSE_TOO_BIG, f"a frame is at most {p.MAX_FRAME} bytes")
                await transport.handle(connection, text)
        except Closed as closed:
            if closed.error is not None:
                connection.send(closed.error)
            connection.close(closed.code, closed.reason)
        except Unavailable as exc:
            connection.send(p.error("unavailable", str(exc), retry_after=5))
            connection.close(p.CLOSE_TRY_LATER, "unavailable")
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("chat %s connection failed (error id %s)", side, error_id)
            connection.send(p.error("server_error", f"Internal server error (error id {error_id})."))
            connection.close(1011, "server error")
        finally:
            await transport._leave(connection)
            if connection.closer is not None:  # the close code goes out before the endpoint returns
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(connection.closer), 3)


def _page_of_scope(scope: Scope, address: str) -> Page:
    origin = agent = None
    for name, value in scope.get("headers", ()):
        if name == b"origin":
            origin = value
        elif name == b"user-agent":
            agent = value
    return _page_of(origin, agent, address)


def _query_key(scope: Scope) -> str | None:
    query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (query.get("key") or [None])[0]


# --------------------------------------------------------------------------- the transport


class ChatTransport:
    """The endpoints (``routes``) and everything the connections of one process share."""

    def __init__(self, core: ChatCore | None, secret: str, hub: Hub | Callable[[], Hub],
                 limits: Limits | None = None, presence_interval: float = 10.0, presence_expiry: float = 30.0,
                 office_hours_seconds: float = 30.0) -> None:
        self.core = core
        self.secret = secret
        self._hub_or_factory = hub
        self.hub: Hub | None = hub if isinstance(hub, Hub) else None
        self.limits = limits or Limits()
        self.presence: Presence | None = None
        self._presence_timing = (presence_interval, presence_expiry)
        self.office_hours_seconds = office_hours_seconds
        self.triggers: Firing | None = None  # chat_routes sets it over the database's core
        self.connections: set[Connection] = set()
        self.by_account: dict[int, set[Connection]] = {}
        #: one subscription per account held, fanned out to by_account (an object(): being made)
        self._account_subscriptions: dict[int, Subscription | object] = {}
        self.visitors: collections.Counter[tuple[int, str]] = collections.Counter()
        self.per_address: collections.Counter[str] = collections.Counter()
        self.polls: dict[str, Connection] = {}
        self.visitor_messages = Buckets(*self.limits.visitor_messages)
        self.address_messages = Buckets(*self.limits.address_messages)
        self.new_visitors = Buckets(*self.limits.address_new_visitors)
        self.address_transcripts = Buckets(*self.limits.address_transcripts)
        self._status: dict[int, tuple[float, bool, str]] = {}  # account -> (checked at, office open, status)
        self._agents_seen: dict[int, dict[int, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started: asyncio.Future[None] | None = None
        self._owns_hub = not isinstance(hub, Hub)
        #: the WebSocket endpoints by path: the server's front calls them directly (web/front.py)
        self.websockets = {"/chat/ws/visitor": _SocketEndpoint(self, "visitor"),
                           "/chat/ws/agent": _SocketEndpoint(self, "agent")}
        self.routes: list[BaseRoute] = [
            *(WebSocketRoute(path, endpoint, name=f"chat_ws_{endpoint.side}")
              for path, endpoint in self.websockets.items()),
            Route("/chat/poll/visitor", self.visitor_poll, methods=["POST"], name="chat_poll_visitor"),
            Route("/chat/poll/agent", self.agent_poll, methods=["POST"], name="chat_poll_agent"),
        ]

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Starts the hub (when the transport made it), presence and the sweeper; idempotent."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                if self.hub is None:
                    factory = self._hub_or_factory
                    assert callable(factory)
                    self.hub = factory()
                if self._owns_hub:
                    await self.hub.start()
                interval, expiry = self._presence_timing
                self.presence = Presence(self.hub, interval=interval, expiry=expiry, on_change=self._presence_changed)
                self.presence.start()
                self._spawn(self._sweep())
                self._started.set_result(None)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started = None
                raise
        else:
            await asyncio.shield(self._started)

    async def events(self) -> ChatEvents:
        """ChatEvents on this process's hub (started if need be): what the partner API uses to tell
        the sockets of every process about a message it stored or a conversation it closed."""
        await self.start()
        return ChatEvents(self._hub())

    async def close(self) -> None:
        for connection in list(self.connections):
            connection.close(p.CLOSE_GOING_AWAY, "server shutting down")
        await asyncio.sleep(0)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self.presence is not None:
            await self.presence.close()
        if self.hub is not None and self._owns_hub:
            await self.hub.close()

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _core(self) -> ChatCore:
        if self.core is None:
            raise Unavailable("The chat service is not configured on this server.")
        return self.core

    # ------------------------------------------------------------------ WebSocket endpoints

    # ------------------------------------------------------------------ long-poll endpoints

    async def visitor_poll(self, request: Request) -> Response:
        return await self._poll(request, "visitor")

    async def agent_poll(self, request: Request) -> Response:
        return await self._poll(request, "agent")

    async def _poll(self, request: Request, side: p.Side) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > p.MAX_POLL_BODY:
                return _http_error(413, "PayloadTooLarge", f"A poll request is at most {p.MAX_POLL_BODY} bytes.")
        try:
            parsed = orjson.loads(body)
            sid = parsed["sid"]
            frames = parsed.get("frames") or []
            if not (sid is None or isinstance(sid, str)) or not isinstance(frames, list):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return _http_error(400, "BadRequest", 'The body is {"sid": null or a string, "frames": [frame, ...]}.')
        if len(frames) > p.MAX_POLL_FRAMES:
            return _http_error(400, "BadRequest", f"At most {p.MAX_POLL_FRAMES} frames per request.")
        await self.start()
        address = request.client.host if request.client else "unknown"
        if sid is None:
            if self.per_address[address] >= self.limits.connections_per_address:
                return _http_error(429, "RateLimited", "Too many connections from this address.",
                                   {"Retry-After": "30"})
            connection = Connection(self, side, address, _page_of(request.headers.get("origin"),
                                                                  request.headers.get("user-agent"), address))
            connection.wake = asyncio.Event()
            connection.sid = secrets.token_urlsafe(16)
            if side == "visitor":
                try:
                    connection.account_id = await self._account_of(request.query_params.get("key"))
                except Closed:
                    return _http_error(404, "NotFound", "No account has this key.")
                except Unavailable as exc:
                    return _http_error(503, "Unavailable", str(exc), {"Retry-After": "5"})
            self._enter(connection)
            self.polls[connection.sid] = connection
        else:
            found = self.polls.get(sid)
            if found is None or found.side != side or found.closing is not None:
                return JSONResponse({"sid": None, "frames": [p.error(
                    "session_expired", "This poll session is unknown or expired; connect again.")]})
            connection = found
        connection.last_seen = time.monotonic()
        wake = connection.wake
        assert wake is not None
        if frames:
            for frame in frames:
                if connection.closing is not None:
                    break
                try:
                    await self.handle(connection, frame)
                except Closed as closed:
                    connection.close(closed.code, closed.reason)
                except Unavailable as exc:
                    connection.send(p.error("unavailable", str(exc), retry_after=5))
            if connection.vid is None and connection.user_id is None:  # no connect: no session
                connection.close(p.CLOSE_POLICY, "no connect frame")
        elif not connection.outbox and connection.closing is None:
            wake.set()  # answers a poll that is still waiting
            await asyncio.sleep(0)
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), self.limits.poll_hold_seconds)
                await asyncio.sleep(0.02)  # what comes with it
            except TimeoutError:
                pass
        connection.last_seen = time.monotonic()
        answer = {"sid": connection.sid if connection.closing is None else None, "frames": connection.take_all()}
        if connection.closing is not None:
            await self._leave(connection)
        return Response(orjson.dumps(answer), media_type="application/json")

    # ------------------------------------------------------------------ bookkeeping

    def _enter(self, connection: Connection) -> None:
        self.connections.add(connection)
        self.per_address[connection.address] += 1

    async def _leave(self, connection: Connection) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        self.per_address[connection.address] -= 1
        if self.per_address[connection.address] <= 0:
            del self.per_address[connection.address]
        if connection.sid is not None:
            self.polls.pop(connection.sid, None)
        for subscription in connection.subscriptions:
            subscription.close()
        connection.subscriptions.clear()
        account_id = connection.account_id
        if account_id is None:
            return
        local = self.by_account.get(account_id)
        if local is not None:
            local.discard(connection)
            if not local:
                del self.by_account[account_id]
                subscription = self._account_subscriptions.pop(account_id, None)
                if isinstance(subscription, Subscription):
                    subscription.close()
                self._status.pop(account_id, None)
                self._agents_seen.pop(account_id, None)
                if self.presence is not None and not self._holds_agents(account_id):
                    self.presence.unwatch(account_id)
        try:
            if connection.side == "visitor" and connection.vid is not None:
                key = (account_id, connection.vid)
                self.visitors[key] -= 1
                if self.visitors[key] <= 0:
                    del self.visitors[key]
                    if self.triggers is not None:
                        self.triggers.left(account_id, connection.vid)
                    await self._publish(agents_topic(account_id), p.event("visitor.disconnected", vid=connection.vid))
                    if self.core is not None:
                        await self.core.visitor_left(account_id, connection.vid)
            elif connection.side == "agent" and self.presence is not None and connection.user_id is not None:
                await self.presence.drop(account_id, connection)
        except Exception:
            log.warning("telling others that a %s left failed", connection.side, exc_info=True)

    def _holds_agents(self, account_id: int) -> bool:
        return bool(self.presence and self.presence._local.get(account_id))

    async def _account_of(self, key: str | None) -> int:
        account_id = await self._core().account_by_key(key) if key and len(key) <= 200 else None
        if account_id is None:
            raise Closed(p.CLOSE_UNKNOWN_ACCOUNT, "unknown account key",
                         p.error("unknown_account", "No account has this key."))
        return account_id

    async def _sweep(self) -> None:
        """Idle connections and expired poll sessions out; rate buckets trimmed; the online
        state of the accounts held re-evaluated (office hours open and close by the clock)."""
        signins_checked = time.monotonic()
        while True:
            limits = self.limits
            await asyncio.sleep(limits.sweep_seconds)
            now = time.monotonic()
            if now - signins_checked >= limits.signin_check_seconds:
                signins_checked = now
                try:
                    await self._end_lapsed_signins()
                except Exception:
                    log.warning("the agents' sign-ins could not be checked", exc_info=True)
            for connection in list(self.connections):
                timeout = limits.poll_session_seconds if connection.wake is not None else limits.idle_seconds
                if now - connection.last_seen > timeout:
                    if connection.wake is not None:
                        connection.close(p.CLOSE_IDLE, "expired")
                        await self._leave(connection)
                    else:
                        connection.close(p.CLOSE_IDLE, "idle")
            for buckets in (self.visitor_messages, self.address_messages, self.new_visitors, self.address_transcripts):
                buckets.sweep()
            for account_id in list(self.by_account):
                checked_at = self._status.get(account_id, (0.0, False, ""))[0]
                if now - checked_at >= self.office_hours_seconds:
                    try:
                        await self._refresh_status(account_id)
                    except Exception:
                        log.warning("the online state of account %s could not be checked", account_id, exc_info=True)

    async def _end_lapsed_signins(self) -> None:
        """Closes (4001) the agent connections whose dashboard sign-in has ended: signed out, the
        user deleted or their password changed. The dashboard then finds its session gone."""
        bound: dict[tuple[int, int, str], list[Connection]] = {}
        for c in self.connections:
            if c.side == "agent" and c.signin is not None and c.account_id is not None and c.user_id is not None:
                bound.setdefault((c.account_id, c.user_id, c.signin), []).append(c)
        for (account_id, user_id, signin), connections in bound.items():
            if not await self._core().signed_in(account_id, user_id, signin):
                log.info("agent connections of user %d closed: their sign-in has ended", user_id)
                for c in connections:
                    c.send(p.error("auth_failed", "The sign-in has ended.", None))
                    c.close(p.CLOSE_AUTH, "signed out")
                    if c.wake is not None:
                        await self._leave(c)

    # ------------------------------------------------------------------ frames

    async def handle(self, connection: Connection, raw: str | bytes | Json) -> None:
        """One client frame: its answer and effects, or its ``server.error`` (never raises for a
        bad frame; raises Closed to end the connection)."""
        connection.last_seen = time.monotonic()
        wait = connection.frames.take()
        if wait:
            connection.refused += 1
            if connection.refused >= self.limits.refused_in_a_row:
                raise Closed(p.CLOSE_POLICY, "flooding")
            ref = raw.get("ref") if isinstance(raw, dict) else None
            connection.send(p.error("rate_limited", f"Too many frames; retry in {wait:.1f} s.",
                                    ref if isinstance(ref, str) else None, round(wait, 1)))
            return
        try:
            frame = p.parse(raw, connection.side)
            connected = connection.vid is not None or connection.user_id is not None
            if isinstance(frame, (p.VisitorConnect, p.AgentConnect)):
                if connected:
                    raise p.ProtocolError("already_connected", "This connection is connected already.", frame.ref)
            elif not connected:
                connection.send(p.error("not_connected", "The first frame is visitor.connect or agent.connect.",
                                        frame.ref))
                raise Closed(p.CLOSE_POLICY, "not connected")
            await self._dispatch(connection, frame)
            connection.refused = 0
        except p.ProtocolError as exc:
            if exc.code == "rate_limited":
                connection.refused += 1
                if connection.refused >= self.limits.refused_in_a_row:
                    raise Closed(p.CLOSE_POLICY, "flooding") from None
            connection.send(exc.frame())
        except Closed:
            raise
        except Unavailable as exc:
            if connection.vid is None and connection.user_id is None:
                raise  # a connect that failed half-way: the connection ends (1013), the client connects again
            connection.send(p.error("unavailable", str(exc), _ref_in(raw), retry_after=2))
        except DomainError as exc:
            connection.send(p.error(_code_of(exc), str(exc), _ref_in(raw)))

    async def _dispatch(self, c: Connection, frame: p.Frame) -> None:
        if isinstance(frame, p.Ping):
            c.send(p.event("pong", ref=frame.ref))
        elif c.side == "visitor":
            await self._visitor_frame(c, frame)
        else:
            await self._agent_frame(c, frame)

    # ------------------------------------------------------------------ the visitor's frames

    async def _visitor_frame(self, c: Connection, frame: p.Frame) -> None:
        core = self._core()
        account_id = c.account_id
        assert account_id is not None
        if isinstance(frame, p.VisitorConnect):
            await self._visitor_connect(c, frame)
            return
        vid = c.vid
        assert vid is not None
        conversation: Json | None
        if isinstance(frame, p.VisitorMessage):
            self._limit(self.visitor_messages, (account_id, vid), frame.ref, "messages")
            self._limit(self.address_messages, c.address, frame.ref, "messages from this address")
            message, conversation = await core.post_visitor_message(account_id, vid, frame.text, frame.client_id,
                                                                    frame.offline)
            c.conversation_id = conversation["id"]
            c.send(p.ack(frame.ref, {"message": message, "conversation": conversation}))
            await ChatEvents(self._hub()).message(account_id, vid, message)
            if self.triggers is not None and not frame.offline:
                self.triggers.message(account_id, vid, message["id"])
        elif isinstance(frame, p.VisitorTyping):
            await self._publish(agents_topic(account_id), p.event(
                "chat.contact_typing", conversationId=c.conversation_id, vid=vid, text=frame.text) | {"is": frame.is_})
            self._ack(c, frame)
        elif isinstance(frame, p.VisitorRead):
            conversation = await core.read(account_id, frame.last_message_id, vid=vid)
            if conversation is None:
                raise p.ProtocolError("not_found", "The visitor has no conversation.", frame.ref)
            await ChatEvents(self._hub()).read(account_id, vid, conversation, frame.last_message_id, None)
            self._ack(c, frame)
        elif isinstance(frame, p.VisitorClose):
            conversation = await core.close_conversation(account_id, vid=vid)
            if conversation is None:
                raise p.ProtocolError("not_found", "The visitor has no open conversation.", frame.ref)
            c.conversation_id = None
            await ChatEvents(self._hub()).closed(account_id, vid, conversation, None)
            self._ack(c, frame, {"conversation": conversation})
        elif isinstance(frame, p.VisitorRate):
            conversation = await core.rate_conversation(account_id, vid, frame.value, frame.text)
            if conversation is None:
                raise p.ProtocolError("not_found", "The visitor has no conversation to rate.", frame.ref)
            await self._publish(agents_topic(account_id), p.event(
                "chat.rated", conversationId=conversation["id"], rating=conversation.get("rating")))
            self._ack(c, frame, {"conversation": conversation})
        elif isinstance(frame, p.VisitorUpdate):
            values = frame.values.given()
            visitor = await core.update_visitor(account_id, vid, values)
            c.visitor = (c.visitor or {}) | visitor | {"domain": c.page.origin}
            await ChatEvents(self._hub()).visitor_updated(account_id, vid, values)
            self._ack(c, frame, {"visitor": _visitor_view(visitor)})
        elif isinstance(frame, p.VisitorTranscript):
            await self._transcript(c, account_id, vid, frame)
        elif isinstance(frame, p.VisitorOpen):
            if self.triggers is not None:
                self.triggers.opened(account_id, vid)
            self._ack(c, frame)
        elif isinstance(frame, p.PageView):
            page = Page(frame.url, frame.title, frame.referrer, c.page.origin, c.page.user_agent, c.address)
            await core.page_view(account_id, vid, page)
            c.page = page
            if self.triggers is not None:
                self.triggers.page(account_id, vid, page)
            await self._publish(agents_topic(account_id), p.event(
                "visitor.updated", vid=vid, changes={"pageUrl": page.url, "pageTitle": page.title,
                                                     "referrer": page.referrer}))
            self._ack(c, frame)

    async def _transcript(self, c: Connection, account_id: int, vid: str, frame: p.VisitorTranscript) -> None:
        self._limit(self.address_transcripts, transcript_bucket_key(c.address), frame.ref,
                    "transcripts from this address")
        try:
            sent = await self._core().send_transcript(account_id, vid, frame.email, frame.lang)
        except TranscriptSent as exc:
            raise p.ProtocolError("transcript_sent", exc.message, frame.ref) from None
        except TranscriptLimited as exc:
            raise p.ProtocolError("transcript_limit", exc.message, frame.ref, exc.retry_after) from None
        if frame.email is not None:
            c.visitor = (c.visitor or {}) | {"email": sent["email"]}
            await ChatEvents(self._hub()).visitor_updated(account_id, vid, {"email": sent["email"]})
        self._ack(c, frame, sent)

    async def _visitor_connect(self, c: Connection, frame: p.VisitorConnect) -> None:
        core = self._core()
        account_id = c.account_id
        assert account_id is not None and self.presence is not None
        vid = p.read_visitor_token(self.secret, account_id, frame.token)
        if vid is None:
            wait = self.new_visitors.take(c.address)
            if wait:
                c.send(p.error("rate_limited", "Too many new visitors from this address.", frame.ref, round(wait, 1)))
                raise Closed(p.CLOSE_POLICY, "too many new visitors")
            vid = p.new_vid()
        c.held = []
        hub = self._hub()
        c.subscriptions.append(await hub.subscribe(visitor_topic(account_id, vid), c.push))
        await self._hold_account(account_id, c)
        await self.presence.watch(account_id)
        page = Page(frame.page_url, frame.page_title, frame.referrer, c.page.origin, c.page.user_agent, c.address)
        c.page = page
        visitor, conversation = await core.connect_visitor(account_id, vid, frame.given_values(), page)
        c.vid = vid
        c.visitor = visitor
        self.visitors[(account_id, vid)] += 1
        c.conversation_id = conversation["id"] if conversation else None
        status = await self._status_of(account_id)
        c.send(p.ack(frame.ref, {
            "protocol": p.VERSION, "vid": vid, "token": p.visitor_token(self.secret, account_id, vid),
            "visitor": _visitor_view(visitor), "conversation": conversation,
            "account": {"status": status, "agents": await self._agents_of(account_id)},
        }))
        for message in await core.messages_after(account_id, frame.after, p.MAX_REPLAY, vid=vid):
            c.send(p.event("chat.message_received", conversationId=message["conversationId"], message=message))
        c.release()
        await self._publish(agents_topic(account_id), p.event("visitor.connected", visitor=visitor | {"online": True}))
        if self.triggers is not None:
            self.triggers.page(account_id, vid, page)

    # ------------------------------------------------------------------ the agent's frames

    async def _agent_frame(self, c: Connection, frame: p.Frame) -> None:
        core = self._core()
        if isinstance(frame, p.AgentConnect):
            await self._agent_connect(c, frame)
            return
        account_id, user_id = c.account_id, c.user_id
        assert account_id is not None and user_id is not None and self.presence is not None
        events = ChatEvents(self._hub())
        conversation: Json | None
        if isinstance(frame, p.AgentMessage):
            if frame.vid is not None:
                posted = await core.post_agent_message_to_visitor(account_id, user_id, frame.vid, frame.text,
                                                                  frame.client_id)
            else:
                assert frame.conversation_id is not None
                posted = await core.post_agent_message(account_id, user_id, frame.conversation_id, frame.text,
                                                       frame.client_id)
            if posted is None:
                raise p.ProtocolError("not_found", "No such conversation or visitor.", frame.ref)
            message, conversation = posted
            c.send(p.ack(frame.ref, {"message": message, "conversation": conversation}))
            await events.message(account_id, conversation["vid"], message)
        elif isinstance(frame, p.AgentTyping):
            vid = await self._vid_of(c, frame.conversation_id, frame.ref)
            who = {"id": user_id, "nickname": (c.agent or {}).get("nickname")}
            await events.agent_typing(account_id, vid, frame.conversation_id, who, frame.is_)
            self._ack(c, frame)
        elif isinstance(frame, p.AgentRead):
            conversation = await core.read(account_id, frame.last_message_id, conversation_id=frame.conversation_id,
                                           user_id=user_id)
            if conversation is None:
                raise p.ProtocolError("not_found", "No such conversation.", frame.ref)
            await events.read(account_id, conversation["vid"], conversation, frame.last_message_id, user_id)
            self._ack(c, frame)
        elif isinstance(frame, p.AgentClose):
            conversation = await core.close_conversation(account_id, conversation_id=frame.conversation_id,
                                                         user_id=user_id)
            if conversation is None:
                raise p.ProtocolError("not_found", "No such open conversation.", frame.ref)
            await events.closed(account_id, conversation["vid"], conversation, user_id)
            self._ack(c, frame, {"conversation": conversation})
        elif isinstance(frame, p.AgentAssign):
            conversation = await core.assign_conversation(account_id, frame.conversation_id, frame.user_id)
            if conversation is None:
                raise p.ProtocolError("not_found", "No such conversation, or no such agent.", frame.ref)
            agent = await core.agent(account_id, frame.user_id) if frame.user_id is not None else None
            await events.assigned(account_id, conversation["vid"], conversation["id"], agent)
            self._ack(c, frame, {"conversation": conversation})
        elif isinstance(frame, p.AgentUpdate):
            c.status = frame.status
            await self.presence.set(account_id, c, user_id, frame.status)
            self._ack(c, frame)

    async def _agent_connect(self, c: Connection, frame: p.AgentConnect) -> None:
        core = self._core()
        assert self.presence is not None
        grant = p.read_agent_grant(self.secret, frame.token)
        agent = await core.agent(grant[0], grant[1]) if grant is not None else None
        if grant is not None and agent is not None and grant[2] is not None \
                and not await core.signed_in(grant[0], grant[1], grant[2]):
            agent = None
        if grant is None or agent is None:
            c.send(p.error("auth_failed", "The agent token is not valid (or has expired).", frame.ref))
            raise Closed(p.CLOSE_AUTH, "authentication failed")
        account_id, user_id, c.signin = grant
        c.account_id, c.agent, c.status = account_id, agent, frame.status
        c.held = []
        hub = self._hub()
        c.subscriptions.append(await hub.subscribe(agents_topic(account_id), c.push))
        await self._hold_account(account_id, c)
        await self.presence.watch(account_id)
        c.user_id = user_id
        await self.presence.set(account_id, c, user_id, frame.status)
        status = await self._status_of(account_id)
        c.send(p.ack(frame.ref, {
            "protocol": p.VERSION, "agent": agent | {"status": frame.status},
            "account": {"id": account_id, "status": status, "agents": await self._agents_of(account_id)},
            "visitors": [], "conversations": await core.open_conversations(account_id),
        }))
        if frame.after is not None:
            for message in await core.messages_after(account_id, frame.after, p.MAX_REPLAY):
                c.send(p.event("chat.message_received", conversationId=message["conversationId"], message=message))
        c.release()
        await ChatEvents(self._hub()).rollcall(account_id)

    async def _vid_of(self, c: Connection, conversation_id: int, ref: str | None) -> str:
        if c.conversation_ids is None:
            c.conversation_ids = {}
        vid = c.conversation_ids.get(conversation_id)
        if vid is None:
            assert c.account_id is not None
            conversation = await self._core().conversation(c.account_id, conversation_id)
            if conversation is None:
                raise p.ProtocolError("not_found", "No such conversation.", ref)
            vid = c.conversation_ids[conversation_id] = conversation["vid"]
            if len(c.conversation_ids) > 1000:
                c.conversation_ids.pop(next(iter(c.conversation_ids)))
        return vid

    # ------------------------------------------------------------------ account-wide events, presence

    async def _hold_account(self, account_id: int, c: Connection) -> None:
        """Adds the connection to the account's local set; the process subscribes to the account's
        topic once, with its first connection of the account, and fans its events out."""
        local = self.by_account.setdefault(account_id, set())
        local.add(c)
        if account_id not in self._account_subscriptions:
            pending = self._account_subscriptions[account_id] = object()  # this attempt's mark
            try:
                subscription = await self._hub().subscribe(
                    account_topic(account_id), lambda data: self._account_event(account_id, data))
            except BaseException:
                if self._account_subscriptions.get(account_id) is pending:
                    del self._account_subscriptions[account_id]
                raise
            if self._account_subscriptions.get(account_id) is pending and account_id in self.by_account:
                self._account_subscriptions[account_id] = subscription
            else:  # every connection of the account left meanwhile (and maybe others came: theirs holds)
                subscription.close()

    def _account_event(self, account_id: int, data: bytes) -> None:
        if data.startswith(b'{"type":"_rollcall"'):
            self._spawn(self._answer_rollcall(account_id))
            return
        for connection in tuple(self.by_account.get(account_id, ())):
            connection.push(data)

    async def _answer_rollcall(self, account_id: int) -> None:
        """visitor.connected for each visitor this process holds, in batches (one hub event each)."""
        seen: set[str] = set()
        frames: list[bytes] = []
        for c in tuple(self.by_account.get(account_id, ())):
            if c.side != "visitor" or c.vid is None or c.vid in seen:
                continue
            seen.add(c.vid)
            frames.append(p.encode(p.event("visitor.connected", visitor=(c.visitor or {}) | {
                "vid": c.vid, "online": True, "pageUrl": c.page.url, "pageTitle": c.page.title,
                "referrer": c.page.referrer, "domain": c.page.origin})))
        events = ChatEvents(self._hub())
        for start in range(0, len(frames), ROLLCALL_BATCH):
            await events.batch(agents_topic(account_id), frames[start:start + ROLLCALL_BATCH])

    def _presence_changed(self, account_id: int) -> None:
        if account_id in self.by_account:
            self._spawn(self._after_presence_change(account_id))

    async def _after_presence_change(self, account_id: int) -> None:
        assert self.presence is not None
        now = self.presence.agents(account_id)
        before = self._agents_seen.get(account_id, {})
        self._agents_seen[account_id] = now
        for user_id in set(before) | set(now):
            if before.get(user_id) != now.get(user_id):
                self._local_account_event(account_id, p.event(
                    "agent.updated", id=user_id, changes={"status": now.get(user_id, "offline")}))
        await self._refresh_status(account_id, office_open=self._status.get(account_id, (0.0, None, ""))[1])

    async def _refresh_status(self, account_id: int, office_open: bool | None = None) -> str:
        assert self.presence is not None
        checked_at = self._status.get(account_id, (0.0, False, ""))[0]
        if office_open is None:
            office_open = await self._core().office_hours_open(account_id)
            checked_at = time.monotonic()
        status = "online" if office_open and self.presence.online(account_id) else "offline"
        previous = self._status.get(account_id)
        self._status[account_id] = (checked_at, office_open, status)
        if previous is not None and previous[2] != status:
            self._local_account_event(account_id, p.event("account.updated", status=status))
        return status

    async def _status_of(self, account_id: int) -> str:
        known = self._status.get(account_id)
        if known is None or time.monotonic() - known[0] >= self.office_hours_seconds:
            return await self._refresh_status(account_id)
        return await self._refresh_status(account_id, office_open=known[1])

    def _local_account_event(self, account_id: int, frame: Json) -> None:
        """Presence and the online state are computed by every process for its own connections."""
        data = p.encode(frame)
        for connection in list(self.by_account.get(account_id, ())):
            connection.push(data)

    async def _agents_of(self, account_id: int) -> list[Json]:
        assert self.presence is not None
        agents = []
        for user_id, status in sorted(self.presence.agents(account_id).items()):
            agent = await self._core().agent(account_id, user_id)
            if agent is not None:
                agents.append(agent | {"status": status})
        return agents

    # ------------------------------------------------------------------ helpers

    def _hub(self) -> Hub:
        assert self.hub is not None
        return self.hub

    async def _publish(self, topic: str, frame: Json) -> None:
        await self._hub().publish(topic, p.encode(frame))

    def _limit(self, buckets: Buckets, key: Any, ref: str | None, what: str) -> None:
        wait = buckets.take(key)
        if wait:
            raise p.ProtocolError("rate_limited", f"Too many {what}; retry in {wait:.1f} s.", ref, round(wait, 1))

    @staticmethod
    def _ack(c: Connection, frame: p.Frame, data: Json | None = None) -> None:
        if frame.ref is not None:
            c.send(p.ack(frame.ref, data))


class ChatEvents:
    """Publishes what happened to a conversation to the sockets concerned, on every process
    (the transport uses it, and so does anything else that changes a conversation)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def rollcall(self, account_id: int) -> None:
        """Asks every process for visitor.connected of the account's visitors it holds (on the
        agents' topic, in batches): a new agent connection, or the XMPP bridge, learns who is on the site."""
        await self.hub.publish(account_topic(account_id), b'{"type":"_rollcall"}')

    async def batch(self, topic: str, frames: list[bytes]) -> None:
        """Several encoded frames as one hub event (``batch_frames`` splits it)."""
        if frames:
            await self.hub.publish(topic, b"\n" + b"\n".join(frames))

    async def _both(self, account_id: int, vid: str, frame: Json) -> None:
        data = p.encode(frame)
        await self.hub.publish(visitor_topic(account_id, vid), data)
        await self.hub.publish(agents_topic(account_id), data)

    async def message(self, account_id: int, vid: str, message: Json) -> None:
        await self._both(account_id, vid, p.event("chat.message_received", conversationId=message["conversationId"],
                                                  message=message))

    async def closed(self, account_id: int, vid: str, conversation: Json, by_user_id: int | None,
                     close_type: str | None = None) -> None:
        """``close_type`` defaults to agent_close when an agent (``by_user_id``) closed it, else
        visitor_close; the partner API closes as an agent with no user (agent_close, by null)."""
        await self._both(account_id, vid, p.event(
            "chat.closed", conversationId=conversation["id"],
            closeType=close_type or ("agent_close" if by_user_id is not None else "visitor_close"),
            closedAt=conversation.get("closedAt"), by=by_user_id))

    async def read(self, account_id: int, vid: str, conversation: Json, last_message_id: int | None,
                   by_user_id: int | None) -> None:
        by = {"type": "agent", "id": by_user_id} if by_user_id is not None else {"type": "visitor"}
        await self._both(account_id, vid, p.event(
            "chat.contact_read", conversationId=conversation["id"], lastMessageId=last_message_id,
            lastReadAt=iso(int(time.time())), by=by))

    async def agent_typing(self, account_id: int, vid: str, conversation_id: int, agent: Json, typing: bool) -> None:
        await self._both(account_id, vid, p.event("chat.agent_typing", conversationId=conversation_id,
                                                  agent=agent) | {"is": typing})

    async def assigned(self, account_id: int, vid: str, conversation_id: int, agent: Json | None) -> None:
        await self._both(account_id, vid, p.event("chat.assigned", conversationId=conversation_id, agent=agent))

    async def visitor_updated(self, account_id: int, vid: str, changes: Json) -> None:
        await self._both(account_id, vid, p.event("visitor.updated", vid=vid, changes=changes))


# --------------------------------------------------------------------------- helpers


def batch_frames(data: bytes) -> list[bytes]:
    """The frames of a hub event: one, or a batch's (``ChatEvents.batch``: a leading newline)."""
    return data[1:].split(b"\n") if data.startswith(b"\n") else [data]


def _page_of(origin: str | bytes | None, user_agent: str | bytes | None, address: str) -> Page:
    """A connection's Page from its Origin and User-Agent headers (str, or raw ASGI bytes)."""
    if isinstance(origin, bytes):
        origin = origin.decode("latin-1")
    if isinstance(user_agent, bytes):
        user_agent = user_agent.decode("latin-1")
    return Page(origin=origin[:2048] if origin else None, user_agent=user_agent[:512] if user_agent else None,
                address=address)


def _visitor_view(visitor: Json) -> Json:
    return {key: visitor.get(key) for key in VISITOR_VIEW}


def _ref_in(raw: Any) -> str | None:
    try:
        obj = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except orjson.JSONDecodeError:
        return None
    return p._ref_of(obj)


def _code_of(exc: DomainError) -> str:
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, Conflict):
        return "conversation_closed"
    if isinstance(exc, ValidationFailed):
        return "invalid_frame"
    return "server_error"


def _http_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def chat_routes(site: Any) -> list[BaseRoute]:
    """The routes site/app.py mounts: a ChatTransport over ``site.chat_core`` (the chat service's
    ChatCore; without one every connect answers ``unavailable``), signing with the site's secret
    key, on the hub the settings choose (hub_for)."""
    from opensupp.chat.core import DatabaseCore
    from opensupp.chat.firing import Firing
    from opensupp.site.secret import secret_key

    settings: Settings = site.settings
    core = getattr(site, "chat_core", None)
    transport = ChatTransport(core, secret_key(settings),
                              lambda: hub_for(settings.resolved_database_url(), settings.redis_url))
    if isinstance(core, DatabaseCore):
        transport.triggers = Firing(core, transport, settings.trigger_cache_mb << 20)
    site.chat = transport
    return transport.routes


__all__ = ("ChatCore", "ChatEvents", "ChatTransport", "Limits", "Page", "chat_routes")
