"""The Starlette app of the web pages, built from the server's settings and database."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from opensupp import __version__
from opensupp.chat.core import DatabaseCore
from opensupp.chat.transport import ChatTransport, chat_routes
from opensupp.config import Settings
from opensupp.db import Database
from opensupp.site import admin, dashboard
from opensupp.site.auth import SignInRequired, SignPages, sign_in_url
from opensupp.site.csrf import CSRFMiddleware, csrf_token
from opensupp.site.i18n import t
from opensupp.site.loader import box_routes
from opensupp.site.secret import secret_key
from opensupp.site.static import FingerprintedStatic
from opensupp.xmpp.auth import XmppAuth
from opensupp.xmpp.config import load_config

HERE = Path(__file__).parent
SESSION_COOKIE = "opensupp_session"
SESSION_DAYS = 14
#: the error codes of the site's error answers, as the API names them (web/errors.py)
CODES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
         413: "PayloadTooLarge"}

log = logging.getLogger("opensupp.site")


class Site:
    """The Starlette app (``asgi``) and what its pages share: settings, database, templates."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.secret = secret_key(settings)
        self.static = FingerprintedStatic(HERE / "static")
        environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                         undefined=jinja2.StrictUndefined)
        environment.globals.update(static_url=self.static.url, version=__version__, t=t)
        self.templates = Jinja2Templates(env=environment, context_processors=[_csrf_context])
        self.chat_core = DatabaseCore(db)  # the chat's transport (chat_routes) stores through it
        self.chat: ChatTransport | None = None  # set by chat_routes
        routes: list[BaseRoute] = [
            Route("/", self.start_page, name="start"),
            Mount("/static", app=self.static, name="static"),
            *box_routes(self),  # the chat code: /loader.js, the box, /widget
            *SignPages(self).routes(),  # /sign/in, /sign/link/<token>, /sign/out
            *dashboard.dashboard_routes(self),  # /dashboard...
            *admin.admin_routes(self),  # /admin...
        ]
        #: the XMPP setup (`opensupp xmpp setup`), whose authentication endpoint Prosody asks
        self.xmpp_config = load_config(settings)
        # Prosody's calls: no cookie, no CSRF token (a shared secret, from loopback only)
        xmpp_routes: list[BaseRoute] = [*XmppAuth(self.xmpp_config, db).routes()] if self.xmpp_config else []
        if settings.test_routes:
            log.warning("OPENSUPP_TEST_ROUTES is on: /_test/ routes are mounted (for tests only)")
            routes += routes_for_tests(self)
        self.asgi = Starlette(
            # after CSRF's list: the chat's polls carry signed tokens, Prosody's calls a shared secret
            routes=[*routes, *chat_routes(self), *xmpp_routes],
            middleware=[Middleware(Sessions, secret=self.secret),
                        Middleware(CSRFMiddleware, error=self.error, routes=routes)],
            exception_handlers={HTTPException: self.http_error, SignInRequired: self.sign_in_required,
                                Exception: self.server_error},
            lifespan=self.lifespan,
        )
        self.asgi.state.settings = settings
        self.asgi.state.db = db

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        for name in self.templates.env.list_templates():  # a broken template fails the start, not a page
            self.templates.get_template(name)
        try:
            yield
        finally:
            if self.chat is not None:  # its sockets are told (1001), its hub and timers stop
                await self.chat.close()

    # ------------------------------------------------------------------ pages

    async def start_page(self, request: Request) -> Response:
        return self.templates.TemplateResponse(request, "index.html")

    # ------------------------------------------------------------------ errors

    async def error(self, request: HTTPConnection, status: int, code: str, message: str,
                    headers: Mapping[str, str] | None = None) -> Response:
        """An error answer: a page for a browser (its Accept names text/html), else JSON as
        the partner API answers errors (``{"error", "message"}``)."""
        if "text/html" in request.headers.get("accept", ""):
            # (it reads only what any HTTPConnection has: the scope, url_for)
            return self.templates.TemplateResponse(request, "error.html",  # type: ignore[arg-type]
                                                   {"status": status, "code": code, "message": message},
                                                   status_code=status, headers=headers)
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        if status == 404:
            message = f"No such path: {request.url.path}. See /docs for the API."
        elif status == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        else:
            message = exc.detail
        return await self.error(request, status, CODES.get(status, "Error"), message, exc.headers)

    async def sign_in_required(self, request: Request, exc: Exception) -> Response:
        """A page asks for a signed-in user: a browser's GET goes to the sign-in page (and back
        afterwards), anything else gets 401 JSON (a script's call: it reloads the page)."""
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            key = exc.message_key if isinstance(exc, SignInRequired) else None
            return RedirectResponse(sign_in_url(request, key), status_code=303, headers={"Cache-Control": "no-store"})
        return await self.error(request, 401, "Unauthorized", "Sign in first: the session has ended or never began.")

    async def server_error(self, request: Request, exc: Exception) -> Response:
        error_id = secrets.token_hex(4)
        log.error("error %s in %s %s", error_id, request.method, request.url.path, exc_info=exc)
        return await self.error(request, 500, "ServerError", f"Internal server error (error id {error_id}).")


def _csrf_context(request: Request) -> dict[str, Any]:
    """Every template's ``csrf_token``: a form's hidden field needs it."""
    return {"csrf_token": lambda: csrf_token(request)}


class Sessions:
    """Signed cookie sessions (Starlette's, itsdangerous underneath): HttpOnly, SameSite=Lax,
    and Secure when the request came over https (directly, or through a proxy in
    ``OPENSUPP_FORWARDED_ALLOW_IPS`` that says so), so that plain-http development works."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        options: dict[str, Any] = {"secret_key": secret, "session_cookie": SESSION_COOKIE,
                                   "max_age": SESSION_DAYS * 86400, "same_site": "lax"}
        self.plain = SessionMiddleware(app, https_only=False, **options)
        self.secure = SessionMiddleware(app, https_only=True, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.secure if scope.get("scheme") in ("https", "wss") else self.plain
        await chosen(scope, receive, send)


def create_site(settings: Settings, db: Database) -> Site:
    return Site(settings, db)


# --------------------------------------------------------------------------- tests only


def routes_for_tests(site: Site) -> list[BaseRoute]:
    """Mounted only with ``OPENSUPP_TEST_ROUTES=1`` (tests/test_site.py, test_ops.py): a
    websocket echo (until the chat runtime brings real sockets), a form and a session
    counter that exercise the templates, CSRF and the signed session, and a bug (a 500)."""

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    async def form(request: Request) -> Response:
        said = None
        if request.method == "POST":
            said = (await request.form()).get("said")
        return site.templates.TemplateResponse(request, "test_form.html", {"said": said})

    async def boom(request: Request) -> Response:
        raise RuntimeError("a bug, on purpose")

    async def session(request: Request) -> Response:
        request.session["count"] = int(request.session.get("count", 0)) + 1
        return JSONResponse({"count": request.session["count"]})

    return [
        WebSocketRoute("/_test/echo", echo),
        Route("/_test/form", form, methods=["GET", "POST"]),
        Route("/_test/session", session),
        Route("/_test/boom", boom),
    ]
