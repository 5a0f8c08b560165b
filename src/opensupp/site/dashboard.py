"""The agent dashboard (docs/dashboard.md): the inbox page and the JSON its script reads.

- ``GET /dashboard``: the page (templates/dashboard.html); its script (static/dashboard.js)
  talks the agent side of the chat protocol (docs/chat-protocol.md 7) with the token the page
  carries in its boot JSON, and reads the rest here:
- ``GET /dashboard/conversations``: the inbox (chat/inbox.py ``inbox``);
- ``GET /dashboard/conversations/<id>``: a conversation, its visitor and messages;
  ``?summary=1``: the inbox's line of one conversation (one that began after the page loaded);
- ``GET /dashboard/search?q=``: conversations by text, name or e-mail;
- ``GET /dashboard/token``: a fresh agent token (the page's expires after 12 hours);
- ``POST /dashboard/status`` ``{"status": "online"|"away"|"offline"}`` (CSRF header): the
  presence the user chose, kept in the session for the next page load.

Every read is the signed-in user's account's. A script's request without a session is a 401
(site/app.py), errors are ``{"error", "message"}`` JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from opensupp.chat import inbox
from opensupp.errors import NotFound, ValidationFailed
from opensupp.site.auth import STATUSES, SignedIn, agent_token, require_user, set_status
from opensupp.site.csrf import csrf_token
from opensupp.site.i18n import strings_for

if TYPE_CHECKING:
    from opensupp.site.app import Site

MAX_STATUS_BODY = 1024
MAX_ID = 2**53


def page_policy(request: Request) -> str:
    """The dashboard's Content-Security-Policy: this origin only, no inline script (the boot
    data is JSON, which the policy does not run), the sign-out form posting here."""
    host = request.headers.get("host") or request.url.netloc
    return "; ".join((
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
        f"connect-src 'self' ws://{host} wss://{host}", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status,
                        headers={"Cache-Control": "no-store"})


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json", headers={"Cache-Control": "no-store"})


def _conversation_id(request: Request) -> int | None:
    raw = request.path_params["cid"]
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 16 and 0 < int(raw) < MAX_ID else None


class Dashboard:
    def __init__(self, site: Site) -> None:
        self.site = site

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/dashboard", self.page, name="dashboard"),
            Route("/dashboard/conversations", self.conversations, name="dashboard_conversations"),
            Route("/dashboard/conversations/{cid}", self.conversation, name="dashboard_conversation"),
            Route("/dashboard/search", self.search, name="dashboard_search"),
            Route("/dashboard/token", self.token, name="dashboard_token"),
            Route("/dashboard/status", self.status, methods=["POST"], name="dashboard_status"),
        ]

    async def page(self, request: Request) -> Response:
        who = await require_user(self.site, request)
        async with self.site.db.read() as session:
            agents = await inbox.agents(session, account_id=who.account_id)
        boot = self.boot(request, who, agents)
        return self.site.templates.TemplateResponse(
            request, "dashboard.html", {"who": who, "lang": who.lang, "boot": boot},
            headers={"Content-Security-Policy": page_policy(request), "Cache-Control": "no-store",
                     "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})

    def boot(self, request: Request, who: SignedIn, agents: list[dict[str, Any]]) -> dict[str, Any]:
        """What the page's script starts from (the template embeds it as JSON)."""
        return {
            "token": agent_token(self.site, who), "ws": "/chat/ws/agent", "poll": "/chat/poll/agent",
            "csrf": csrf_token(request), "status": who.status, "lang": who.lang,
            "user": {"id": who.user_id, "accountId": who.account_id, "nickname": who.nickname or who.fullname,
                     "email": who.email, "isAdmin": who.is_admin},
            "agents": agents, "strings": strings_for(who.lang, "dashboard"),
        }

    async def conversations(self, request: Request) -> Response:
        who = await require_user(self.site, request)
        async with self.site.db.read() as session:
            found = await inbox.inbox(session, account_id=who.account_id)
        return _json({"conversations": found})

    async def conversation(self, request: Request) -> Response:
        who = await require_user(self.site, request)
        conversation_id = _conversation_id(request)
        if conversation_id is None:
            return _error(400, "BadRequest", "A conversation id is a positive integer.")
        try:
            async with self.site.db.read() as session:
                if request.query_params.get("summary") == "1":
                    return _json(await inbox.summary(session, account_id=who.account_id,
                                                     conversation_id=conversation_id))
                return _json(await inbox.conversation(session, account_id=who.account_id,
                                                      conversation_id=conversation_id))
        except NotFound:
            return _error(404, "NotFound", f"No conversation {conversation_id} in your account.")

    async def search(self, request: Request) -> Response:
        who = await require_user(self.site, request)
        query = request.query_params.get("q", "")
        try:
            async with self.site.db.read() as session:
                found = await inbox.search(session, account_id=who.account_id, query=query[:inbox.QUERY_MAX + 1])
        except ValidationFailed:
            return _error(400, "BadRequest", f"q: {inbox.QUERY_MIN} to {inbox.QUERY_MAX} characters.")
        return _json({"q": query.strip(), "conversations": found, "limit": inbox.SEARCH_MAX})

    async def token(self, request: Request) -> Response:
        who = await require_user(self.site, request)
        return _json({"token": agent_token(self.site, who)})

    async def status(self, request: Request) -> Response:
        await require_user(self.site, request)
        body = await request.body()
        status: Any = None
        if len(body) <= MAX_STATUS_BODY:
            try:
                parsed = orjson.loads(body)
                status = parsed.get("status") if isinstance(parsed, dict) else None
            except orjson.JSONDecodeError:
                status = None
        if status not in STATUSES:
            return _error(400, "BadRequest", 'The body is {"status": "online" | "away" | "offline"}.')
        set_status(request, status)
        return _json({"status": status})


def dashboard_routes(site: Site) -> list[BaseRoute]:
    return Dashboard(site).routes()
