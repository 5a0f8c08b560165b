"""``POST /batch``: many API calls in one HTTP request (Microsoft Graph's JSON batching shape).

A partner creating thousands of accounts pays one HTTP round trip per account otherwise;
on a fast server that, not the database, is what limits a script. A batch carries up to
``MAX_REQUESTS`` calls, each answered as if it had come alone: the same route, the same
validation, its own ``Idempotency-Key``, its own error. The batch itself is authenticated
once; a call carries its own headers, then the batch's but for those that describe the
batch's body or belong to it alone (``_NOT_INHERITED``); each call counts against the rate
limit. A call may not be another batch, nor a route that builds its own answer (404).

How the calls run (``batch``): when there are several and no call's route has a ``prepare``
step (the create and update of every resource web/crud.py declares have one: users,
triggers, hooks, offline emails), one after another in one shared transaction
(``db.sharing``), so that the batch commits once, and the creates' answers are saved under
their Idempotency-Keys before it commits. A call whose unit of work fails in there cannot
be undone alone: the whole transaction rolls back and every call runs again in a unit of
its own, as the calls of the other batches do from the start, at most ``BATCH_CONCURRENCY``
at once and in no guaranteed order (as Graph's do without ``dependsOn``). The answers are
the same either way: one response per call, in the order of the request. Send calls that
depend on each other in separate batches.

Each call goes through the app's own dispatch (web/asgi.py), as a request of its own would
after authentication, and has an access-log line of its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import unquote

import orjson
from pydantic import Field, WithJsonSchema

from opensupp.db import UnitFailed, sharing
from opensupp.errors import DomainError, FieldError, NotFound, RateLimited, Unavailable
from opensupp.idempotency import service as idempotency
from opensupp.web.errors import error_response, server_error
from opensupp.web.fields import Body, Omittable
from opensupp.web.idempotent import deferred_saves
from opensupp.web.request import Answer, Request, ok
from opensupp.web.requestid import request_id
from opensupp.web.resources import Out
from opensupp.web.routing import Route, Router

if TYPE_CHECKING:
    from opensupp.web.asgi import App

log = logging.getLogger("opensupp.web")

router = Router()
TAG = "Batch"
PATH = "/batch"
MAX_REQUESTS = 100
MAX_URL = 2000
#: the request headers a call may carry; the batch's apiKey is every call's
CALL_HEADERS = ("Idempotency-Key",)
#: A batch's calls run at once when they run alone (see batch)
BATCH_CONCURRENCY = 4
#: the batch's own headers a call does not inherit: they describe the batch's body
_NOT_INHERITED = frozenset({b"content-length", b"content-type", b"transfer-encoding", b"idempotency-key"})

CallHeaderMap = Annotated[
    dict[str, str] | None,
    WithJsonSchema({
        "type": "object", "nullable": True, "additionalProperties": False,
        "properties": {"Idempotency-Key": {"type": "string"}},
        "description": "Only `Idempotency-Key` (any case): the batch's apiKey is every call's. The key is "
                       "checked as on a single create, in the call's own response (400 there, not for the batch).",
    }),
]
CallBody = Annotated[
    dict[str, Any] | None,
    WithJsonSchema({"type": "object", "nullable": True, "description": "The call's JSON body (a POST's)."}),
]


class Call(Body):
    id: Omittable[str] = Field(None, min_length=1, max_length=64,
                    description="Echoed in the call's response; defaults to the call's index (\"0\", \"1\", ...).")
    method: Literal["GET", "POST"]
    url: str = Field(min_length=1, max_length=MAX_URL, pattern="^/",
                     description="The path (and query) as for a single call: `/accounts/create`, "
                                 "`/accounts/?limit=10`.")
    headers: CallHeaderMap = None
    body: CallBody = None


class BatchRequest(Body):
    requests: list[Call] = Field(min_length=1, max_length=MAX_REQUESTS)

    @classmethod
    def check_raw(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        """Header names are case-insensitive, and only the ones a call may carry are known."""
        errors: list[FieldError] = []
        calls = data.get("requests")
        if isinstance(calls, list) and len(calls) <= MAX_REQUESTS:
            for i, call in enumerate(calls):
                headers = call.get("headers") if isinstance(call, dict) else None
                if not isinstance(headers, dict):
                    continue
                for name in headers:
                    if name.lower() not in _KNOWN_HEADERS:
                        errors.append(FieldError(
                            f"requests[{i}].headers.{name}",
                            f"is not a header a call may carry (allowed: {', '.join(CALL_HEADERS)})",
                        ))
        return {}, errors


_KNOWN_HEADERS = {name.lower() for name in CALL_HEADERS}


def header(headers: dict[str, str] | None, name: str) -> str | None:
    """A call's header, by its name in any case."""
    if headers:
        for key, value in headers.items():
            if key.lower() == name:
                return value
    return None


class CallResponse(Out):
    id: str
    status: int = Field(description="The status the call would have had alone.")
    headers: dict[str, str] = Field(description="Its headers other than Content-Type (`Idempotent-Replayed`, "
                                                "`Retry-After`, `Allow`).")
    body: Annotated[Any, WithJsonSchema({"description": "Its JSON answer; null for a 204."})] = None


class BatchResponse(Out):
    responses: list[CallResponse]


@router.add("batch", PATH, body=BatchRequest, response=BatchResponse, tag=TAG)
async def batch(req: Request, body: BatchRequest) -> Answer:
    """Send many calls in one request

    Up to 100 calls, each `{"id"?, "method", "url", "headers"?: {"Idempotency-Key"}, "body"?}`,
    answered `{"responses": [{"id", "status", "headers", "body"}]}` in the same order. Each
    call is routed, validated, authorized and committed exactly as if it came alone, and its
    failure is its own: the batch answers 200 whenever the batch itself is well formed. The
    calls run concurrently, in no guaranteed order; send dependent calls in separate batches.
    Each call counts against the rate limit. A call may not be another batch.
    """
    # How: the calls one after another in one shared transaction, so a batch of creates
    # costs one commit (and on PostgreSQL no BEGIN/COMMIT round trips per call). A call
    # whose unit of work fails cannot be undone alone in there, so then the whole
    # transaction rolls back and every call runs again in its own unit, concurrently: the
    # answers are the same either way, only the cost differs. A batch with a call whose
    # route has a ``prepare`` step (the creates and updates of web/crud.py's resources: a
    # user's password hash, ...) always takes the second way, so that no slow step runs
    # while the shared transaction is open, and password hashes run in parallel.
    from opensupp.web.asgi import LOOP_VALIDATION_US

    app = req.app
    calls = body.requests
    limited = [_rate_limited(app, req) for _ in calls]  # decided once, whichever way the calls run
    targets = [app.table.lookup(unquote(call.url.partition("?")[0])) for call in calls]
    costly = sum(route.body.validation_cost(call.body or {}) for call, (route, _) in zip(calls, targets, strict=True)
                 if route is not None and route.costly and route.body is not None) > LOOP_VALIDATION_US
    inherited = [(name, value) for name, value in req.raw_headers if name not in _NOT_INHERITED]
    if len(calls) > 1 and all(route is None or route.prepare is None for route, _ in targets):
        entries: list[tuple[Any, ...]] = []
        saves: list[tuple[Any, ...]] = []  # the creates' answers under their Idempotency-Keys
        try:
            async with app.db.transaction() as session:
                token = deferred_saves.set(saves)
                try:
                    with sharing(session):
                        answers = []
                        for i, call in enumerate(calls):
                            answers.append(await run_call(req, call, i, targets[i], limited[i], inherited, entries,
                                                          costly))
                            # other requests run between two calls: on SQLite a call never
                            # suspends, so 100 of them would hold the event loop as one
                            await asyncio.sleep(0)
                finally:
                    deferred_saves.reset(token)
                if saves:
                    try:
                        await idempotency.save_many(session, saves)
                    except Exception as exc:  # a key taken (a replay, a duplicate) or expired
                        raise UnitFailed(repr(exc)) from exc
        except (UnitFailed, Unavailable) as exc:  # rolled back: each call again, alone
            log.debug("a batch of %d calls runs again call by call: %s", len(calls), exc)
        else:
            if app.access is not None:
                for entry in entries:
                    app.access.add(*entry)
            return ok({"responses": answers})
    # at most BATCH_CONCURRENCY calls at once: enough to overlap password hashes and
    # PostgreSQL round trips; 100 calls started at once would each validate its body in
    # the same turn of the event loop, holding it for all of them (for triggers, long enough
    # to stall every other request)
    running = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def limited_call(i: int, call: Call) -> dict[str, Any]:
        async with running:
            return await run_call(req, call, i, targets[i], limited[i], inherited, None, costly)

    answers = await asyncio.gather(*(limited_call(i, call) for i, call in enumerate(calls)))
    return ok({"responses": answers})


def _rate_limited(app: App, req: Request) -> RateLimited | None:
    limiter = app.auth.limiter
    if limiter is None or req.key_id is None:
        return None
    try:
        limiter.check(req.key_id)
    except RateLimited as exc:
        return exc
    return None


async def run_call(batch_req: Request, call: Call, index: int, target: tuple[Route | None, list[int]],
                   limited: RateLimited | None, inherited: list[tuple[bytes, bytes]],
                   entries: list[tuple[Any, ...]] | None = None, costly: bool = False) -> dict[str, Any]:
    """One call of a batch, its route looked up already; its access-log line goes to
    ``entries`` when given (written once the shared transaction has committed). Its
    request's headers are its own, then the batch's (``inherited``)."""
    from opensupp.web.asgi import body_ignored, logged_path

    app = batch_req.app
    started = time.perf_counter()
    path, _, query = call.url.partition("?")
    own = [(name.lower().encode("latin-1", "replace"), value.encode("latin-1", "replace"))
           for name, value in call.headers.items()] if call.headers else []
    req = Request(app, call.method, unquote(path), query.encode("latin-1", "replace"), path.encode(),
                  own + inherited if own else inherited)
    req.partner_id, req.key_id = batch_req.partner_id, batch_req.key_id
    route, req.ids = target
    data = call.body if call.body is not None else {}
    try:
        if limited is not None:
            raise limited
        if route is not None and (route.raw or route.verb == "batch"):
            raise NotFound(f"{req.path} cannot be called in a batch.")
        if body_ignored(route, req):
            data = {}
        assert route is not None  # body_ignored raised NotFound otherwise
        status, headers, body = await app.dispatch(route, req, b"", header(call.headers, "idempotency-key"), data,
                                                   costly)
    except DomainError as exc:
        status, headers, body = error_response(exc)
    except Exception:
        error_id = secrets.token_hex(4)
        log.exception("error %s in %s %s (in a batch)", error_id, req.method, logged_path(req))
        status, headers, body = server_error(error_id)
    if app.access is not None:
        entry = ("batch", req.method, logged_path(req), status, len(body),
                 (time.perf_counter() - started) * 1000, req.partner_id, request_id.get())
        if entries is None:
            app.access.add(*entry)
        else:
            entries.append(entry)
    return {
        "id": call.id if call.id is not None else str(index),
        "status": status,
        "headers": {name.decode().title(): value.decode() for name, value in headers if name != b"content-type"},
        "body": orjson.Fragment(body) if body else None,
    }
