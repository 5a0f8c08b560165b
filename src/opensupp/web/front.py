"""The one ASGI app the server runs: the partner API's paths to its core, the rest to the
web pages.

An HTTP request whose first path segment is one of the core's (``/accounts``, ``/batch``,
``/test``, ``/healthz``, ``/readyz``, ``/openapi.json``, ``/docs``, ``/metrics``: taken from
its route table) goes to the core (web/asgi.py) as it is, after one set look-up; every
other request, ``/`` and every websocket included, goes to the Starlette app of the web
pages (opensupp/site). Both share the settings and the database, and one lifespan drives
both: the core starts first (it opens the database the pages use) and stops last; a
failing start of either fails the server's start.

The pages' requests get what the core gives its own: an ``X-Request-Id`` (web/requestid.py),
an access line and the metrics, counted by the Starlette route's template.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.types import ASGIApp

from opensupp.web.asgi import UNMATCHED, App, logged_path_of, run_lifespan
from opensupp.web.errors import server_error
from opensupp.web.requestid import new_request_id, request_id, valid_request_id

_F = TypeVar("_F", bound=Callable[..., Any])
log = logging.getLogger("opensupp.web")


def _asgi3(method: _F) -> _F:
    """Mark ``method`` as a coroutine function, which it is to its callers (it returns a
    coroutine): servers tell an ASGI 3 app from an ASGI 2 one by that (uvicorn's "auto")."""
    if hasattr(inspect, "markcoroutinefunction"):  # Python 3.12+
        return inspect.markcoroutinefunction(method)
    method._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]  # 3.11's marker
    return method


class Front:
    """What ``create_app`` returns: the core and the pages behind one ASGI callable; ``db``,
    ``settings``, ``access`` and ``metrics`` are the core's (the pages share them)."""

    def __init__(self, core: App, site: Starlette, websockets: Mapping[str, ASGIApp] | None = None) -> None:
        self.core = core
        self.site = site
        #: websocket endpoints by path, called without the pages' middleware (a session, CSRF):
        #: the chat's sockets carry signed tokens, no cookie, and each frame of a middleware
        #: stays on the stack as long as the connection lives (about 3 KB per socket)
        self.websockets: Mapping[str, ASGIApp] = websockets or {}
        self.settings = core.settings
        self.db = core.db
        self.access = core.access
        self.metrics = core.metrics
        self.api_segments = frozenset(route.key[0] for route in core.table.routes if route.key)
        self._core_http = core.http
        self._site_lifespan: contextlib.AsyncExitStack | None = None

    @_asgi3
    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        # Not a coroutine itself: it hands the server the chosen app's coroutine, so an API
        # request runs with no frame of ours above the core's (each frame in a coroutine
        # chain is passed through again at every suspension and resumption)
        if scope["type"] == "http":
            path: str = scope["path"]
            end = path.find("/", 1)
            segment = path[1:end] if end > 0 else path[1:]
            if segment in self.api_segments or (not segment and end == 1 and _first_segment(path) in self.api_segments):
                return self._core_http(scope, receive, send)
            return self._site(scope, receive, send)
        if scope["type"] == "lifespan":
            return self.lifespan(receive, send)
        return self._site(scope, receive, send)

    # ------------------------------------------------------------------ lifespan

    async def lifespan(self, receive: Any, send: Any) -> None:
        await run_lifespan(self, receive, send)

    async def startup(self) -> None:
        await self.core.startup()
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(self.site.router.lifespan_context(self.site))
        except BaseException:
            await self.core.shutdown()
            raise
        self._site_lifespan = stack
        gc.collect()
        gc.freeze()  # what the pages built at start lives as long as the process (see App.startup)

    async def shutdown(self) -> None:
        try:
            if self._site_lifespan is not None:
                stack, self._site_lifespan = self._site_lifespan, None
                await stack.aclose()
        finally:
            await self.core.shutdown()  # the database closes last; the access log is flushed

    # ------------------------------------------------------------------ the pages' requests

    async def _site(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
                break
        if given is not None and (rid := valid_request_id(given)) is not None:
            rid_header = given
        else:
            rid = new_request_id()
            rid_header = rid.encode()
        request_id.set(rid)
        status = 0
        size = 0

        async def answer(message: MutableMapping[str, Any]) -> None:
            nonlocal status, size
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept"):
                status = message.get("status", 101)
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid_header)]
            elif kind == "http.response.body":
                size += len(message.get("body", b""))
            elif kind == "websocket.close" and not status:
                status = 403  # closed before it was accepted: uvicorn answers the handshake 403
            await send(message)

        app = self.websockets.get(scope["path"]) if scope["type"] == "websocket" else None
        try:
            await (app or self.site)(scope, receive, answer)
        except Exception:
            # Starlette answers (and logs: site/app.py) an HTTP request's error itself, then
            # raises it on for servers to log again: once is enough
            if scope["type"] != "http" or not status:
                error_id = secrets.token_hex(4)
                log.exception("error %s in %s %s", error_id, scope.get("method", "WEBSOCKET"), logged_path_of(scope))
            if scope["type"] == "http" and not status:
                status, headers, body = server_error(error_id)
                headers.append((b"content-length", str(len(body)).encode()))
                await answer({"type": "http.response.start", "status": status, "headers": headers})
                await answer({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            if self.access is not None:
                client = scope.get("client")
                self.access.add(client[0] if client else "-", scope.get("method", "WEBSOCKET"), logged_path_of(scope),
                                status or 499, size, elapsed * 1000, "-", rid)
            if self.metrics is not None and scope["type"] == "http":
                self.metrics.observe(template, status or 499, elapsed)


def _first_segment(path: str) -> str:
    """The first non-empty segment (the core ignores empty ones: ``//accounts/``)."""
    for segment in path.split("/"):
        if segment:
            return segment
    return ""
