"""CSRF protection for every form of the web pages: a per-session token.

``csrf_token(request)`` is the session's token (made on first use; templates put it in a
hidden ``csrf_token`` field). ``CSRFMiddleware`` checks every request of an unsafe method
(anything but GET, HEAD, OPTIONS, TRACE) before the app sees it: the token must come in
the ``X-CSRF-Token`` header (scripts) or the form's ``csrf_token`` field (forms, url-encoded
or multipart), and equal the session's, compared in constant time. Missing or wrong: 403,
JSON or a page as for the site's other errors. A cross-site page cannot read the token,
and the session cookie (SameSite=Lax) is not sent with a cross-site POST anyway: two locks.

It sits inside the session middleware (it reads ``scope["session"]``); the form's body is
read here (at most ``MAX_FORM`` bytes, else 413) and handed on to the app unchanged. A
request that no route answers with its method is not checked: it gets its 404 or 405.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FIELD = "csrf_token"
HEADER = "x-csrf-token"
SESSION_KEY = "csrf"
MAX_FORM = 1024 * 1024
FORMS = (b"application/x-www-form-urlencoded", b"multipart/form-data")

#: (request, status, error code, message) -> the answer (the site's error page or JSON)
ErrorPage = Callable[[HTTPConnection, int, str, str], Awaitable[Response]]


def csrf_token(request: HTTPConnection) -> str:
    """The session's CSRF token, made and kept in the session on first use."""
    token = request.session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def same_token(given: str | None, expected: object) -> bool:
    """Whether ``given`` is the session's token, in time independent of where they differ."""
    if not given or not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


class CSRFMiddleware:
    def __init__(self, app: ASGIApp, error: ErrorPage, routes: list[BaseRoute]) -> None:
        self.app = app
        self.error = error
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or not self._answered(scope):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get(HEADER)
        if given is None and headers.get("content-type", "").encode("latin-1").split(b";")[0].strip() in FORMS:
            body = await _read(receive)
            if body is None:
                await self._refuse(scope, receive, send, 413, "PayloadTooLarge",
                                   f"A form is at most {MAX_FORM} bytes.")
                return
            request = Request(scope, _replay(body, receive))  # parsed from a copy; the app gets another
            try:
                value = (await request.form()).get(FIELD)
            except Exception as exc:  # a malformed multipart body (starlette: HTTPException 400)
                await self._refuse(scope, receive, send, 400, "InvalidForm", f"The form could not be read: {exc}")
                return
            finally:
                await request.close()
            given = value if isinstance(value, str) else None
            receive = _replay(body, receive)
        if not same_token(given, scope["session"].get(SESSION_KEY)):
            await self._refuse(scope, receive, send, 403, "Forbidden",
                               "The form's CSRF token is missing or wrong: reload the page and send it again.")
            return
        await self.app(scope, receive, send)

    def _answered(self, scope: Scope) -> bool:
        """Whether a route answers this path and method (a mount: its path)."""
        return any(route.matches(scope)[0] is Match.FULL for route in self.routes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str) -> None:
        response = await self.error(HTTPConnection(scope), status, code, message)
        await response(scope, receive, send)


async def _read(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, then: Receive) -> Receive:
    """A receive that gives ``body`` whole, then what ``then`` gives (the disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await then()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
