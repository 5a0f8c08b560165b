"""The protocol edge of the partner API: one ASGI callable for its paths.

Per request, in API.md's order of checks: read the body (413 over 1 MiB), authenticate
(401: web/auth.py), route (404, 405), parse and validate the body (400), then run the
route's handler inside the unit of work its verb calls for (creates under an
Idempotency-Key: web/idempotent.py; batches: web/batch.py), and answer JSON. Every error,
ours or a bug, leaves through ``web.errors``; every answer carries an ``X-Request-Id``
(web/requestid.py), and every request writes one access-log line with the apiKey redacted.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from opensupp import lane
from opensupp.config import Settings
from opensupp.db import Database, TransactionConflict, open_database
from opensupp.errors import (
    DomainError,
    InvalidJSON,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
)
from opensupp.web.accesslog import AccessLog
from opensupp.web.auth import Authenticator, redact_query
from opensupp.web.errors import error_response, server_error
from opensupp.web.fields import validate, validate_json
from opensupp.web.idempotent import Idempotency
from opensupp.web.metrics import Metrics
from opensupp.web.pagination import encode_cursor, parse_page
from opensupp.web.request import Answer, Headers, Request, ok
from opensupp.web.requestid import new_request_id, request_id, valid_request_id
from opensupp.web.retry import in_unit, once_more
from opensupp.web.routing import Route, Router, RouteTable

if TYPE_CHECKING:
    from opensupp.chat.transport import ChatTransport

__all__ = ["App", "Answer", "Headers", "Request", "parse_object", "read_body", "ok", "BODY_TIMED_OUT"]

MAX_BODY = 1024 * 1024
#: Microseconds of validation a request may spend on the event loop (Body.validation_cost):
#: a body (or a batch's bodies together) that may take longer is validated in the lane.
LOOP_VALIDATION_US = 20_000
#: set in a request's scope (to the timeout, in seconds) by the server when its body is late
BODY_TIMED_OUT = "opensupp.body_timed_out"
#: the metrics' route label of a path no route matches
UNMATCHED = "(unmatched)"

log = logging.getLogger("opensupp.web")

_LOG_UNSAFE = re.compile(r"[\x00-\x20\x7f-\xff\"]")


class Lifecycle(Protocol):
    async def startup(self) -> None: ...
    async def shutdown(self) -> None: ...


async def run_lifespan(app: Lifecycle, receive: Any, send: Any) -> None:
    """ASGI's lifespan protocol for an app with ``startup()`` and ``shutdown()``: a failing
    startup is logged and reported to the server, which then stops."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await app.startup()
            except Exception as exc:
                log.exception("startup failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await app.shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


class ClientGone(Exception):
    pass


def parse_object(raw: bytes) -> dict[str, Any]:
    """A POST body as a JSON object; empty means ``{}``."""
    if not raw or raw.isspace():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        line, column, reason = exc.lineno, exc.colno, exc.msg
        if "UTF-8" in reason:
            line, column = _utf8_error_position(raw)
            reason = "invalid UTF-8"
        raise InvalidJSON(f"Request body is not valid JSON: {reason} at line {line}, column {column}.") from None
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")
        raise InvalidJSON(f"Request body must be a JSON object, not {kind} (line 1, column 1).")
    return data


def _utf8_error_position(raw: bytes) -> tuple[int, int]:
    try:
        raw.decode("utf-8")
        return 1, 1
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        return line, column


async def read_body(scope: dict[str, Any], receive: Any, content_length: int | None) -> bytes:
    """The request body; 413 over MAX_BODY, 408 when the server (web/server.py) marked the
    scope ``BODY_TIMED_OUT`` (the body took too long) and woke us."""
    if content_length is not None and content_length > MAX_BODY:
        raise PayloadTooLarge(f"Request body is over 1 MiB ({MAX_BODY} bytes).")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        if BODY_TIMED_OUT in scope:
            raise RequestTimeout(f"The request body did not arrive within {scope[BODY_TIMED_OUT]:g} s.")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > MAX_BODY:
                raise PayloadTooLarge(f"Request body is over 1 MiB ({MAX_BODY} bytes).")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class App:
    """The partner API's core: its routes (``routers``), their database, the key check."""

    def __init__(self, settings: Settings, routers: list[Router], db: Database | None = None,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.db = db or open_database(settings.resolved_database_url(), pool_size=settings.db_pool_size,
                                      connect_timeout=settings.db_connect_timeout,
                                      statement_timeout=settings.db_statement_timeout)
        self.table = RouteTable(routers)
        self.auth = Authenticator(settings, self.db, self.spawn)
        self.idempotency = Idempotency(self.db, int(settings.idempotency_hours * 3600))
        self.access = AccessLog(json=settings.log_format == "json") if settings.access_log else None
        self.metrics = metrics
        self._tasks: set[asyncio.Task[Any]] = set()
        #: jobs that run in the background while the server does (a domain's purge): started at startup
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.openapi: bytes | None = None  # filled by opensupp.app
        #: the chat's realtime transport (opensupp.app: the web pages' one), which the partner
        #: API's chat routes tell of the messages and closes they commit
        self.chat: ChatTransport | None = None

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        await run_lifespan(self, receive, send)

    async def startup(self) -> None:
        await self.db.open()
        self.spawn(self.idempotency.purge_loop())
        for job in self.background:
            self.spawn(job())
        if self.access is not None:
            self.spawn(self.access.run())
        # Everything alive now (modules, the route table) lives as long as the process:
        # keep it out of the collector's generations so full collections stay short.
        gc.collect()
        gc.freeze()

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.db.close()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ one request

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        raw_headers = scope["headers"]
        api_key = idempotency_key = content_length = given_id = None
        chunked = False
        for name, value in raw_headers:
            if name == b"apikey":
                api_key = value.decode("latin-1")
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() else None
            elif name == b"idempotency-key":
                idempotency_key = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"x-request-id":
                given_id = value
        if given_id is not None and (rid := valid_request_id(given_id)) is not None:
            rid_header = given_id
        else:
            rid = new_request_id()
            rid_header = rid.encode()
        request_id.set(rid)  # for every log line of this request (logs.py's filter)
        req = Request(self, scope["method"], scope["path"], scope["query_string"], scope.get("raw_path"), raw_headers)
        try:
            status, headers, body = await self.handle(req, scope, receive, api_key, idempotency_key, content_length,
                                                      chunked)
        except DomainError as exc:
            status, headers, body = error_response(exc)
        except ClientGone:
            status, body = 499, b""  # nginx's code for "client closed the request"
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("error %s in %s %s", error_id, req.method, logged_path(req))
            status, headers, body = server_error(error_id)
        if status != 499:
            headers.append((b"content-length", str(len(body)).encode()))
            headers.append((b"x-request-id", rid_header))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - started
        if self.access is not None:
            client = scope.get("client")
            self.access.add(
                client[0] if client else "-",
                req.method,
                logged_path(req),
                status,
                len(body),
                elapsed * 1000,
                req.partner_id if req.partner_id is not None else "-",
                rid,
            )
        if self.metrics is not None:
            route = req.route
            self.metrics.observe(route.path if route is not None else UNMATCHED, status, elapsed)

    @staticmethod
    def _logged_path(req: Request) -> str:
        return logged_path(req)

    async def handle(self, req: Request, scope: dict[str, Any], receive: Any, api_key: str | None,
                     idempotency_key: str | None, content_length: int | None, chunked: bool) -> Answer:
        if req.method == "GET" and content_length is None and not chunked:
            raw = b""  # a GET's body is never used; a large declared one still gets its 413
        else:
            raw = await read_body(scope, receive, content_length)

        route, req.ids = self.table.lookup(req.path)
        req.route = route
        if route is None or not route.public:
            await self.auth.authenticate(req, api_key, scope.get("client"))
        if body_ignored(route, req):
            raw = b""
        assert route is not None  # body_ignored raised NotFound otherwise
        return await self.dispatch(route, req, raw, idempotency_key)

    # ------------------------------------------------------------------ verbs

    async def dispatch(self, route: Route, req: Request, raw: bytes, idempotency_key: str | None,
                       data: dict[str, Any] | None = None, costly: bool = False) -> Answer:
        """Answer one call; ``data`` is its body when already parsed (a batch's calls);
        ``costly``: validate it off the event loop (a batch's calls may be, together)."""
        verb = route.verb
        db = self.db
        if verb == "get":
            async with db.read() as session:
                return ok(await route.handler(req, session))
        if verb == "list":
            limit, after = parse_page(req.query)
            async with db.read() as session:
                records, more = await route.handler(req, session, after, limit)  # (a page, whether more follow)
            return ok({"records": records, "next": encode_cursor(int(records[-1]["id"])) if more else None})
        if verb == "delete":
            try:
                async with db.single() as session:
                    await route.handler(req, session)
            except TransactionConflict as exc:  # see web/retry.py
                await once_more(exc, called(req), lambda: in_unit(db.single, route.handler, req))
            return 204, [], b""
        if verb == "page":
            result = await route.handler(req)
            return result if route.raw else ok(result)

        model = route.body
        body = validate_json(model, raw) if model is not None and route.direct_json and data is None and raw else None
        if body is None:
            if data is None:
                data = parse_object(raw)
            if model is None:
                body = data
            elif route.costly and (costly or model.validation_cost(data) > LOOP_VALIDATION_US):
                body = await lane.run(validate, model, data)
            else:
                body = validate(model, data)
        if verb == "batch":
            return await route.handler(req, body)  # web/batch.py: each call through this dispatch
        if route.prepare is not None:
            body = await route.prepare(req, body)
        if verb == "create" and idempotency_key is not None:
            create_once = self.idempotency.create_once
            assert data is not None  # a create's body is parsed (its route is never direct_json)
            try:
                return await create_once(route, req, data, body, idempotency_key)
            except TransactionConflict as exc:
                return await once_more(exc, called(req),
                                       lambda: create_once(route, req, data, body, idempotency_key))
        unit = db.read if route.unit == "read" else db.single if route.unit == "single" else db.transaction
        try:
            async with unit() as session:
                return ok(await route.handler(req, session, body))
        except TransactionConflict as exc:
            return ok(await once_more(exc, called(req), lambda: in_unit(unit, route.handler, req, body)))


def logged_path(req: Request) -> str:
    """The path as sent (still percent-encoded, so ``%0A`` cannot forge a log line),
    with the apiKey redacted and any control character escaped."""
    return _logged(req.raw_path, req.path, req.query_string)


#: a path whose rest is a secret, logged redacted
SECRET_PATH = "/sign/link/"


def logged_path_of(scope: dict[str, Any]) -> str:
    """``logged_path`` of an ASGI scope (the web pages' requests and websockets)."""
    return _logged(scope.get("raw_path"), scope["path"], scope.get("query_string", b""))


def _logged(raw_path: bytes | None, path: str, query_string: bytes) -> str:
    shown = raw_path.decode("latin-1") if raw_path is not None else path
    if path.startswith(SECRET_PATH):  # a one-time sign-in link's token (site/auth.py), however it was encoded
        shown = SECRET_PATH + "[redacted]"
    if query_string:
        shown = f"{shown}?{redact_query(query_string)}"
    return _LOG_UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", shown)


def called(req: Request) -> str:
    return f"{req.method} {logged_path(req)}"


def body_ignored(route: Route | None, req: Request) -> bool:
    """Whether ``route`` answers ``req.method`` with the body ignored (the PHP wrapper sends a
    GET when a create's or update's parameters are empty); NotFound or MethodNotAllowed when
    it does not answer it at all."""
    if route is None:
        raise NotFound(f"No such path: {req.path}. See /docs for the API.")
    if req.method in route.methods:
        return False
    if req.method == "GET" and route.get_as_post:
        return True
    raise MethodNotAllowed(f"{req.method} is not allowed on {req.path}; use {route.allow}.", route.allow)
