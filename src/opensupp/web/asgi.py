"""The HTTP edge: one ASGI callable for the whole partner API.

Per request, in API.md's order of checks: read the body (413 over 1 MiB), authenticate
(401), route (404, 405), parse and validate the body (400), then run the route's handler
inside the unit of work its verb calls for, and answer JSON. Every error, ours or a bug,
leaves through ``web.errors``; every request writes one access-log line with the apiKey
redacted.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from opensupp import lane
from opensupp.config import Settings
from opensupp.db import Database, TransactionConflict, UnitFailed, open_database, sharing
from opensupp.errors import (
    AuthError,
    Conflict,
    DomainError,
    InvalidJSON,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    Unavailable,
    invalid,
)
from opensupp.idempotency import service as idempotency
from opensupp.partners import service as partners
from opensupp.timeutil import now
from opensupp.web.accesslog import AccessLog
from opensupp.web.auth import Authenticator, redact_query
from opensupp.web.batch import BatchRequest, Call, header
from opensupp.web.errors import JSON, error_response, server_error
from opensupp.web.fields import validate, validate_json
from opensupp.web.pagination import encode_cursor, parse_page
from opensupp.web.ratelimit import RateLimiter
from opensupp.web.retry import in_unit, once_more
from opensupp.web.routing import Route, RouteTable, Router

MAX_BODY = 1024 * 1024
#: Microseconds of validation a request may spend on the event loop (Body.validation_cost):
#: a body (or a batch's bodies together) that may take longer is validated in the lane.
LOOP_VALIDATION_US = 20_000
#: A batch's calls run at once when they run alone (see run_batch)
BATCH_CONCURRENCY = 4
TOUCH_EVERY = 60
PURGE_EVERY = 3600
#: set in a request's scope (to the timeout, in seconds) by the server when its body is late
BODY_TIMED_OUT = "opensupp.body_timed_out"

log = logging.getLogger("opensupp")

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_LOG_UNSAFE = re.compile(r"[\x00-\x20\x7f-\xff\"]")

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]


class ClientGone(Exception):
    pass


class Request:
    """What a handler sees: the caller, the ids in the path, the query."""

    __slots__ = ("method", "path", "raw_path", "query_string", "partner_id", "key_id", "ids", "app", "_query")

    def __init__(self, app: App, method: str, path: str, query_string: bytes, raw_path: bytes | None = None) -> None:
        self.app = app
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query_string = query_string
        self.partner_id: int | None = None
        self.key_id: int | None = None
        self.ids: list[int] = []
        self._query: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True))
        return self._query

    @property
    def db(self) -> Database:
        return self.app.db


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
    def __init__(self, settings: Settings, routers: list[Router], db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or open_database(settings.resolved_database_url(), pool_size=settings.db_pool_size,
                                      connect_timeout=settings.db_connect_timeout,
                                      statement_timeout=settings.db_statement_timeout)
        self.table = RouteTable(routers)
        self.auth = Authenticator(settings, self.db)
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        self.idempotency_ttl = int(settings.idempotency_hours * 3600)
        self.access = AccessLog() if settings.access_log else None
        self._touched: dict[int, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.openapi: bytes | None = None  # filled by opensupp.app

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        await self.db.open()
        self.spawn(self._purge_loop())
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

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ one request

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        req = Request(self, scope["method"], scope["path"], scope["query_string"], scope.get("raw_path"))
        try:
            status, headers, body = await self.handle(req, scope, receive)
        except DomainError as exc:
            status, headers, body = error_response(exc)
        except ClientGone:
            status, body = 499, b""  # nginx's code for "client closed the request"
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("error %s in %s %s", error_id, req.method, self._logged_path(req))
            status, headers, body = server_error(error_id)
        if status != 499:
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        if self.access is not None:
            client = scope.get("client")
            self.access.add(
                client[0] if client else "-",
                req.method,
                self._logged_path(req),
                status,
                len(body),
                (time.perf_counter() - started) * 1000,
                req.partner_id if req.partner_id is not None else "-",
            )

    @staticmethod
    def _logged_path(req: Request) -> str:
        """The path as sent (still percent-encoded, so ``%0A`` cannot forge a log line),
        with the apiKey redacted and any control character escaped."""
        path = req.raw_path.decode("latin-1") if req.raw_path is not None else req.path
        if req.query_string:
            path = f"{path}?{redact_query(req.query_string)}"
        return _LOG_UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", path)

    @classmethod
    def _called(cls, req: Request) -> str:
        return f"{req.method} {cls._logged_path(req)}"

    async def handle(self, req: Request, scope: dict[str, Any], receive: Any) -> Answer:
        api_key = idempotency_key = content_length = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"apikey":
                api_key = value.decode("latin-1")
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() else None
            elif name == b"idempotency-key":
                idempotency_key = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
        if req.method == "GET" and content_length is None and not chunked:
            raw = b""  # a GET's body is never used; a large declared one still gets its 413
        else:
            raw = await read_body(scope, receive, content_length)

        route, req.ids = self.table.lookup(req.path)
        if route is None or not route.public:
            await self.authenticate(req, api_key, scope.get("client"))
        if _body_ignored(route, req):
            raw = b""
        return await self.dispatch(route, req, raw, idempotency_key)

    async def authenticate(self, req: Request, api_key: str | None, client: tuple[str, int] | None) -> None:
        if api_key is None:
            api_key = req.query.get("apiKey")
        if not api_key:
            raise AuthError("No apiKey given.")
        key_hash = partners.hash_key(api_key)
        principal = self.auth.keys.get(key_hash)
        if principal is None:
            principal = await self.auth.look_up(api_key, key_hash, client)
        req.partner_id = principal.partner_id
        req.key_id = principal.key_id
        if self.limiter is not None:
            self.limiter.check(principal.key_id)
        self._touch(principal.key_id)

    def _touch(self, key_id: int) -> None:
        """Record when a key was last used, at most once a minute per key and process."""
        t = now()
        if t - self._touched.get(key_id, 0) >= TOUCH_EVERY:
            self._touched[key_id] = t
            self.spawn(self._write_touch(key_id, t))

    async def _write_touch(self, key_id: int, t: int) -> None:
        try:
            async with self.db.single() as session:
                await partners.touch_key(session, key_id=key_id, at=t)
        except Unavailable:
            pass  # the database's Health has logged the outage
        except Exception:
            log.warning("could not record last use of key %s", key_id, exc_info=True)

    async def _purge_loop(self) -> None:
        while True:
            try:
                purged = 0
                while True:  # in slices, each well within OPENSUPP_DB_STATEMENT_TIMEOUT
                    async with self.db.single() as session:
                        count = await idempotency.purge_expired(session, before=now() - self.idempotency_ttl)
                    purged += count
                    if count < idempotency.PURGE_SLICE:
                        break
                if purged:
                    log.info("purged %d expired idempotency keys", purged)
            except Unavailable:
                pass  # logged by the database's Health; the next hour tries again
            except Exception:
                log.warning("could not purge idempotency keys", exc_info=True)
            await asyncio.sleep(PURGE_EVERY)

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
                await once_more(exc, self._called(req), lambda: in_unit(db.single, route.handler, req))
            return 204, [], b""
        if verb == "page":
            result = await route.handler(req)
            return result if route.raw else ok(result)

        body = validate_json(route.body, raw) if route.direct_json and data is None and raw else None
        if body is None:
            if data is None:
                data = parse_object(raw)
            if route.body is None:
                body = data
            elif route.costly and (costly or route.body.validation_cost(data) > LOOP_VALIDATION_US):
                body = await lane.run(validate, route.body, data)
            else:
                body = validate(route.body, data)
        if verb == "batch":
            return await self.run_batch(req, body)
        if route.prepare is not None:
            body = await route.prepare(req, body)
        if verb == "create" and idempotency_key is not None:
            try:
                return await self.create_once(route, req, data, body, idempotency_key)
            except TransactionConflict as exc:
                return await once_more(exc, self._called(req),
                                       lambda: self.create_once(route, req, data, body, idempotency_key))
        unit = db.read if route.unit == "read" else db.single if route.unit == "single" else db.transaction
        try:
            async with unit() as session:
                return ok(await route.handler(req, session, body))
        except TransactionConflict as exc:
            return ok(await once_more(exc, self._called(req), lambda: in_unit(unit, route.handler, req, body)))

    # ------------------------------------------------------------------ batches

    async def run_batch(self, req: Request, batch: BatchRequest) -> Answer:
        """Every call of the batch, each answered as if it had come alone (web/batch.py).

        The fast way: the calls one after another in one shared transaction, so a batch of
        creates costs one commit (and on PostgreSQL no BEGIN/COMMIT round trips per call).
        A call whose unit of work fails cannot be undone alone in there, so then the whole
        transaction rolls back and every call runs again in its own unit, concurrently:
        the answers are the same either way, only the cost differs. Calls that hash a
        password first (users) always take the second way, so their hashes run in parallel.
        """
        calls = batch.requests
        limited = [self._rate_limited(req) for _ in calls]  # decided once, whichever way the calls run
        targets = [self.table.lookup(unquote(call.url.partition("?")[0])) for call in calls]
        costly = sum(route.body.validation_cost(call.body or {}) for call, (route, _) in zip(calls, targets)
                     if route is not None and route.costly) > LOOP_VALIDATION_US
        if len(calls) > 1 and all(route is None or route.prepare is None for route, _ in targets):
            entries: list[tuple[Any, ...]] = []
            saves: list[tuple[Any, ...]] = []  # the creates' answers under their Idempotency-Keys
            try:
                async with self.db.transaction() as session:
                    token = _deferred_saves.set(saves)
                    try:
                        with sharing(session):
                            answers = []
                            for i, call in enumerate(calls):
                                answers.append(await self.run_call(req, call, i, targets[i], limited[i], entries,
                                                                   costly))
                                # other requests run between two calls: on SQLite a call never
                                # suspends, so 100 of them would hold the event loop as one
                                await asyncio.sleep(0)
                    finally:
                        _deferred_saves.reset(token)
                    if saves:
                        try:
                            await idempotency.save_many(session, saves)
                        except Exception as exc:  # a key taken (a replay, a duplicate) or expired
                            raise UnitFailed(repr(exc)) from exc
            except (UnitFailed, Unavailable) as exc:  # rolled back: each call again, alone
                log.debug("a batch of %d calls runs again call by call: %s", len(calls), exc)
            else:
                if self.access is not None:
                    for entry in entries:
                        self.access.add(*entry)
                return ok({"responses": answers})
        # at most BATCH_CONCURRENCY calls at once: enough to overlap password hashes and
        # PostgreSQL round trips; 100 calls started at once would each validate its body in
        # the same turn of the event loop, holding it for all of them (150 ms for 100 triggers)
        running = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def run_call(i: int, call: Call) -> dict[str, Any]:
            async with running:
                return await self.run_call(req, call, i, targets[i], limited[i], None, costly)

        answers = await asyncio.gather(*(run_call(i, call) for i, call in enumerate(calls)))
        return ok({"responses": answers})

    def _rate_limited(self, req: Request) -> RateLimited | None:
        if self.limiter is None:
            return None
        try:
            self.limiter.check(req.key_id)
        except RateLimited as exc:
            return exc
        return None

    async def run_call(self, batch_req: Request, call: Call, index: int, target: tuple[Route | None, list[int]],
                       limited: RateLimited | None, entries: list[tuple[Any, ...]] | None = None,
                       costly: bool = False) -> dict[str, Any]:
        """One call of a batch, its route looked up already; its access-log line goes to
        ``entries`` when given (written once the shared transaction has committed)."""
        started = time.perf_counter()
        path, _, query = call.url.partition("?")
        req = Request(self, call.method, unquote(path), query.encode("latin-1", "replace"), path.encode())
        req.partner_id, req.key_id = batch_req.partner_id, batch_req.key_id
        route, req.ids = target
        data = call.body if call.body is not None else {}
        try:
            if limited is not None:
                raise limited
            if route is not None and (route.raw or route.verb == "batch"):
                raise NotFound(f"{req.path} cannot be called in a batch.")
            if _body_ignored(route, req):
                data = {}
            status, headers, body = await self.dispatch(route, req, b"", header(call.headers, "idempotency-key"), data,
                                                        costly)
        except DomainError as exc:
            status, headers, body = error_response(exc)
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("error %s in %s %s (in a batch)", error_id, req.method, self._logged_path(req))
            status, headers, body = server_error(error_id)
        if self.access is not None:
            entry = ("batch", req.method, self._logged_path(req), status, len(body),
                     (time.perf_counter() - started) * 1000, req.partner_id)
            if entries is None:
                self.access.add(*entry)
            else:
                entries.append(entry)
        return {
            "id": call.id if call.id is not None else str(index),
            "status": status,
            "headers": {name.decode().title(): value.decode() for name, value in headers if name != b"content-type"},
            "body": orjson.Fragment(body) if body else None,
        }

    async def create_once(self, route: Route, req: Request, data: dict[str, Any], body: Any, key: str) -> Answer:
        """A create under an Idempotency-Key (idempotency/service.py): the create and its saved
        answer in one transaction; a key already taken rolls it all back and replays."""
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise invalid("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
        path = "/" + "/".join(s for s in req.path.split("/") if s)
        fingerprint = idempotency.fingerprint(path, data)
        deferred = _deferred_saves.get()
        if deferred is not None:  # in a batch's shared transaction: saved with the others at its end
            async with self.db.transaction() as session:
                out = orjson.dumps(await route.handler(req, session, body))
            deferred.append((req.partner_id, key, fingerprint, 200, out.decode(), now()))
            return 200, [JSON], out
        for _ in range(3):
            t = now()
            try:
                async with self.db.transaction() as session:
                    out = orjson.dumps(await route.handler(req, session, body))
                    if await idempotency.save(session, partner_id=req.partner_id, key=key, fingerprint=fingerprint,
                                              now=t, ttl=self.idempotency_ttl, status=200, response=out.decode()):
                        return 200, [JSON], out
                    raise _KeyTaken
            except (_KeyTaken, DomainError) as exc:
                # the writer's view (SQLite: a duplicate in the same group commit is not committed yet)
                async with self.db.transaction() as session:
                    stored = await idempotency.stored(session, partner_id=req.partner_id, key=key,
                                                      fingerprint=fingerprint, now=now(), ttl=self.idempotency_ttl)
                if stored is not None:
                    status, answer = stored
                    return status, [JSON, (b"idempotent-replayed", b"true")], answer.encode()
                if not isinstance(exc, _KeyTaken):
                    raise
                # the key's holder vanished between the conflict and the look (it expired): again
        raise Conflict("A request with this Idempotency-Key is in progress; retry later.")


def _body_ignored(route: Route | None, req: Request) -> bool:
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


#: set while a batch's calls run in one shared transaction: their idempotent answers, to be
#: saved in one statement at its end (a taken key then rolls the batch back to single calls)
_deferred_saves: contextvars.ContextVar[list[tuple[Any, ...]] | None] = contextvars.ContextVar(
    "opensupp_deferred_saves", default=None)


class _KeyTaken(Exception):
    """The Idempotency-Key was saved by another request first: roll this one back."""


def ok(result: dict[str, Any] | bytes) -> Answer:
    """A 200 with ``result`` as JSON; bytes are the JSON already (a handler that writes its own)."""
    return 200, [JSON], result if type(result) is bytes else orjson.dumps(result)
