"""The HTTP connection: uvicorn's httptools protocol with the deadlines and the cap it lacks.

uvicorn (0.55) arms its keep-alive timer only after a response and cancels it on any byte,
so a client that never finishes a request head (or never sends one), or trickles a body,
holds its connection and a file descriptor forever: 20 such sockets were all still open
after 30 s. ``Protocol`` adds, per process:

- a request head must be in whole within ``header_timeout`` of the connection or of the
  previous response; then the connection is closed, after a ``408`` when part of a head
  came (the rest of an unread body trickling in after a response does not keep it open);
- a body within ``body_timeout`` of its head: the app is woken with its scope marked
  (``asgi.BODY_TIMED_OUT``) and answers ``408 RequestTimeout`` itself, closing the
  connection, so the answer and its access-log line are the app's as for any error;
- at most ``max_connections`` connections: one more is answered ``503`` and closed, and
  the log says so once per streak of refusals, not once per connection.

- a request head of at most ``MAX_HEAD`` bytes: a larger one is answered ``431`` and the
  connection closed (uvicorn gathers a head whole, however large: a header of 10 MB was
  read, kept and handed on).

Idle keep-alive connections keep uvicorn's own timer (``timeout_keep_alive``).

One sweep per process checks the deadlines every ``SWEEP_EVERY`` seconds, and the request
path pays nothing for them: no timer per request (an event-loop timer is not free), not
even a clock read. A wait (for a head, or for a body) is timed from the first sweep that
sees it, so a deadline is kept within two sweeps (a second) after its time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from opensupp.errors import DomainError, HeadTooLarge, RequestTimeout, Unavailable
from opensupp.web.asgi import BODY_TIMED_OUT
from opensupp.web.errors import error_response

if TYPE_CHECKING:
    from opensupp.config import Settings

SWEEP_EVERY = 0.5
MAX_HEAD = 64 * 1024  # bytes of a request's line and headers (nginx reads 32 KB by default)
REFUSED_GRACE = 1.0  # how long a refused connection may take to send something to answer

log = logging.getLogger("opensupp.web")


class Protocol(HttpToolsProtocol):
    """uvicorn's protocol (``uvicorn.run(http=functools.partial(Protocol, ...))``)."""

    # Slots, not the instance dict: uvicorn's ~28 attributes fill a dict's shared keys (at
    # most 30 in CPython 3.11); five more made every ``self.x`` in uvicorn's methods a slow
    # look-up, on every request.
    __slots__ = ("header_timeout", "body_timeout", "max_connections", "waiting", "since", "head_scope", "head_bytes")

    def __init__(self, config: Any, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, header_timeout: float = 10.0,
                 body_timeout: float = 30.0, max_connections: int = 2048) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.waiting: tuple[str, Any] | None = None  # the wait the sweep saw last: (what, its cycle)
        self.since = 0.0  # when the sweep first saw it
        self.head_scope: Any = None  # the scope of the request head being read,
        self.head_bytes = 0  # and the bytes read of it

    # (a stream protocol gets a stream transport: uvicorn's own override narrows it so too)
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            _refusals.refused(self.max_connections)
            transport.set_protocol(_Refused(transport, self.loop, self.server_state.default_headers))
            return
        _refusals.accepted()
        super().connection_made(transport)
        if self.server_state not in _sweeps:
            _sweeps[self.server_state] = _Sweep(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, then the head's size: a chunk read while a head is still unfinished (its
        scope is no cycle's yet: see _end_head) counts whole against ``MAX_HEAD``, so a head
        is cut off within one chunk past it. Counted here, once a chunk, rather than in the
        parser's callbacks, once a header (a cost on every request)."""
        HttpToolsProtocol.data_received(self, data)
        scope, cycle = self.scope, self.cycle
        if scope is None or (cycle is not None and scope is cycle.scope):
            return
        if scope is not self.head_scope:
            self.head_scope, self.head_bytes = scope, 0
        self.head_bytes += len(data)
        if self.head_bytes > MAX_HEAD and not self.transport.is_closing():
            message = f"The request line and headers are over {MAX_HEAD} bytes."
            self.transport.write(raw_response(HeadTooLarge(message), self.server_state.default_headers))
            self.transport.close()

    def check_deadlines(self, now: float) -> None:
        """End the wait that has lasted too long, if any (called by the sweep). A wait is
        known by its cycle: the same cycle still waiting at the next sweep is the same wait."""
        cycle = self.cycle
        if self.transport.is_closing():
            return
        if cycle is None or cycle.response_complete:  # waiting for a request head
            if self._waited("head", cycle, now) > self.header_timeout:
                self._end_head(cycle)
        elif cycle.more_body and not cycle.response_started and not self.pipeline:  # for its body
            if self._waited("body", cycle, now) > self.body_timeout and BODY_TIMED_OUT not in cycle.scope:
                # an ASGI scope may carry extension keys; uvicorn's TypedDict lists only the spec's
                cycle.scope[BODY_TIMED_OUT] = self.body_timeout  # type: ignore[literal-required]
                cycle.message_event.set()  # read_body sees the mark and answers 408
        else:  # the app has the request
            self.waiting = None

    def _waited(self, what: str, cycle: Any, now: float) -> float:
        waiting = self.waiting
        if waiting is None or waiting[0] != what or waiting[1] is not cycle:
            self.waiting, self.since = (what, cycle), now
        return now - self.since

    def _end_head(self, cycle: Any) -> None:
        # on_message_begin makes a new scope for each request: one that no cycle has yet is
        # a head begun and not finished
        if self.scope is not None and (cycle is None or self.scope is not cycle.scope):
            message = f"The request head did not arrive within {self.header_timeout:g} s."
            self.transport.write(raw_response(RequestTimeout(message), self.server_state.default_headers))
        self.transport.close()


class _Refused(asyncio.Protocol):
    """A connection over the cap: answered 503 when its request starts to arrive (so the
    client reads the answer rather than a reset), or closed after REFUSED_GRACE."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 default_headers: list[tuple[bytes, bytes]]) -> None:
        self.transport = transport
        self.default_headers = default_headers
        self.timer = loop.call_later(REFUSED_GRACE, transport.close)

    def data_received(self, data: bytes) -> None:
        if not self.transport.is_closing():
            message = "This server process has too many open connections; retry in a moment."
            self.transport.write(raw_response(Unavailable(message, retry_after=1), self.default_headers))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()


class _Refusals:
    """Refused connections, logged once per streak: a flood must not flood the log too."""

    def __init__(self) -> None:
        self.count = 0

    def refused(self, cap: int) -> None:
        if not self.count:
            log.warning("%d connections open in this process: refusing new ones (503) until some close "
                        "(OPENSUPP_MAX_CONNECTIONS)", cap)
        self.count += 1

    def accepted(self) -> None:
        if self.count:
            log.warning("accepting connections again, after refusing %d", self.count)
            self.count = 0


class _Sweep:
    """Every SWEEP_EVERY seconds, each connection of one server checks its deadlines."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        self.loop = loop
        self.connections = connections
        loop.call_later(SWEEP_EVERY, self.run)

    def run(self) -> None:
        now = self.loop.time()
        for connection in list(self.connections):
            if isinstance(connection, Protocol):
                connection.check_deadlines(now)
        self.loop.call_later(SWEEP_EVERY, self.run)


#: a WebSocket message uvicorn reads at most (bytes): a chat frame is at most 16 KiB (the transport
#: closes with 1009 above it, saying so); uvicorn's own bound, 16 MiB, would let one frame take that
#: much memory first
WS_MAX_SIZE = 64 * 1024


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run``'s arguments, but for the app and where it listens: ``opensupp serve``'s,
    and the benches' servers', which must run as it does."""
    return dict(
        loop="uvloop",
        # httptools, with the deadlines and the connection cap uvicorn lacks (``Protocol``)
        # (a partial, not a class of its own: the workers get it pickled)
        http=functools.partial(Protocol, header_timeout=settings.header_timeout,
                               body_timeout=settings.body_timeout, max_connections=settings.max_connections),
        timeout_keep_alive=settings.keepalive_timeout,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        ws_max_size=WS_MAX_SIZE,
    )


def raw_response(exc: DomainError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """``exc``'s answer (web/errors.py: its Retry-After included) as bytes to write, ending
    with the connection."""
    status, headers, body = error_response(exc)
    extra = [(b"content-length", str(len(body)).encode())]
    if b"connection" not in {name for name, _ in headers}:
        extra.append((b"connection", b"close"))
    lines = [STATUS_LINE[status]]
    for name, value in [*default_headers, *headers, *extra]:
        lines += [name, b": ", value, b"\r\n"]
    lines += [b"\r\n", body]
    return b"".join(lines)


_refusals = _Refusals()
_sweeps: weakref.WeakKeyDictionary[ServerState, _Sweep] = weakref.WeakKeyDictionary()
