"""Signing in to the dashboard, and who is signed in.

Three ways in, each ending in the same signed session cookie (site/app.py ``Sessions``:
HttpOnly, SameSite=Lax, Secure over https):

- the guide's fast login, ``GET /sign/in?apiKey=&uid=&lang=&status=``: the partner's key must
  own the user's account. The answer is a redirect to the dashboard at once, so the key is
  neither in the address bar nor in the history; the access log redacts it (web/auth.py);
- a one-time link, ``GET /sign/link/<token>`` (the partner API mints it: signin/api.py);
- e-mail and password, ``POST /sign/in`` (argon2id verified off the event loop), with the
  failed attempts counted and locked out as signin/service.py says.

A session holds the user's id, its account, a fingerprint of its password hash, a random id
and when it began. Each page reads the user back (``signed_in``): a deleted user, a changed
password, a session signed out (its id is kept in ``ended_sessions``, so a copy of the cookie
is worth nothing) or one older than SESSION_SECONDS is signed out. The session id is replaced at each sign-in
(the old cookie's contents are dropped), so a cookie planted before sign-in is worth nothing.
"""

from __future__ import annotations

import logging
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from opensupp.chat import protocol
from opensupp.partners.service import authenticate, hash_key
from opensupp.passwords import dummy_hash, verify_password
from opensupp.signin import service
from opensupp.signin.service import LinkUser, fingerprint, signin_of
from opensupp.site.i18n import dashboard_lang, text
from opensupp.users.service import email_key

if TYPE_CHECKING:
    from opensupp.site.app import Site

log = logging.getLogger("opensupp.site")

SESSION_SECONDS = service.SESSION_SECONDS
STATUSES = ("online", "away", "offline")
#: what ``/sign/in?m=`` may show (a redirect's message)
MESSAGES = ("sign.expired", "sign.signedOut", "sign.badKey", "sign.badLink", "sign.fastLoginOff")
DEVICE_COOKIE = "opensupp_device"
DEVICE_SALT = "opensupp.device"
DEVICE_SECONDS = 180 * 86400
#: the sign-in page: nothing but this origin's style sheet, never framed (clickjacking), forms to itself only
PAGE_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none';"
               " base-uri 'none'")
#: where a signed-in user lands
HOME = "/dashboard"
MAX_EMAIL = 254
MAX_PASSWORD = 1024


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The user a request's session signs in, as read from the database for that request."""

    user_id: int
    account_id: int
    partner_id: int
    role: str  # "agent" | "admin"
    email: str
    fullname: str
    nickname: str
    avatar: str
    lang: str  # the dashboard's language: one of i18n.DASHBOARD_LANGS
    status: str  # the presence the user chose: one of STATUSES
    signin: str = ""  # this sign-in as agent tokens carry it: the session ends, their connections end

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class SignInRequired(Exception):
    """No one (or no longer anyone) is signed in: a page redirects to the sign-in page, a
    script's request gets 401 (site/app.py)."""

    def __init__(self, message_key: str | None = None) -> None:
        super().__init__(message_key or "sign in")
        self.message_key = message_key


async def signed_in(site: Site, request: HTTPConnection) -> SignedIn | None:
    """The request's user, or None; a session that no longer holds is cleared."""
    session = request.session
    uid = session.get("uid")
    if not isinstance(uid, int):
        return None
    sid = session.get("sid")
    if not isinstance(sid, str):
        session.clear()
        return None
    async with site.db.read() as db:
        row = await db.fetchrow(
            "SELECT u.account_id, a.partner_id, u.role, u.email, u.fullname, u.nickname, u.avatar, u.lang,"
            " u.password_hash, EXISTS (SELECT 1 FROM ended_sessions WHERE sid_hash = $2)"
            " FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1", uid, service.sid_digest(sid))
    since = session.get("since")
    if row is None or row[0] != session.get("aid") or not service.still_holds(
            password_hash=row[8], ended=row[9], password_fingerprint=session.get("fp"), since=since):
        session.clear()
        return None
    assert isinstance(since, int)  # (still_holds checked it)
    lang = session.get("lang") or dashboard_lang(row[7])
    status = str(session.get("status")) if session.get("status") in STATUSES else "online"
    return SignedIn(uid, row[0], row[1], row[2], row[3], row[4], row[5], row[6], lang, status,
                    signin_of(sid, session["fp"], since))


async def require_user(site: Site, request: HTTPConnection, *, admin: bool = False) -> SignedIn:
    """The signed-in user; SignInRequired if none; 403 for an agent where ``admin`` is asked."""
    who = await signed_in(site, request)
    if who is None:
        raise SignInRequired()
    if admin and not who.is_admin:
        raise HTTPException(403, text(who.lang, "sign.adminOnly"))
    return who


def agent_token(site: Site, who: SignedIn) -> str:
    """What the dashboard's script sends in ``agent.connect`` (docs/chat-protocol.md): bound to
    this sign-in, so that its connections end when the session does."""
    return protocol.agent_token(site.secret, who.account_id, who.user_id, who.signin or None)


def set_status(request: HTTPConnection, status: str) -> None:
    if status not in STATUSES:
        raise ValueError(status)
    request.session["status"] = status


def set_lang(request: HTTPConnection, lang: str) -> None:
    request.session["lang"] = dashboard_lang(lang)


async def _start_session(site: Site, request: HTTPConnection, user: LinkUser, *, lang: str | None = None,
                         status: str | None = None) -> None:
    async with site.db.read() as db:
        password_hash = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", user.user_id)
    request.session.clear()  # a new session: nothing of the one before survives, its CSRF token included
    request.session.update({"uid": user.user_id, "aid": user.account_id, "fp": fingerprint(password_hash or ""),
                            "since": int(time.time()), "sid": secrets.token_urlsafe(16)})
    if lang:
        set_lang(request, lang)
    if status in STATUSES:
        request.session["status"] = status


async def restart_session(site: Site, request: HTTPConnection, who: SignedIn) -> None:
    """After the user changed their own password here: this browser stays signed in (a new
    session with the new password's fingerprint); every other session of the user has ended."""
    lang, status = request.session.get("lang"), request.session.get("status")
    await _start_session(site, request, LinkUser(who.user_id, who.account_id, who.partner_id),
                         lang=lang if isinstance(lang, str) else None,
                         status=status if isinstance(status, str) else None)


def _next_of(value: object) -> str:
    """A local path to go on to after signing in (never another site: ``//host``, ``/\\host``)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith(("//", "/\\")) and len(value) < 2000:
        parts = urllib.parse.urlsplit(value)
        if not parts.scheme and not parts.netloc:
            return value
    return HOME


def _away(location: str) -> Response:
    """A redirect that leaves no secret behind: not cached, no Referer sent on."""
    return RedirectResponse(location, status_code=303, headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


class SignPages:
    """The routes: /sign/in (GET: the form or the fast login; POST: e-mail and password),
    /sign/link/<token>, /sign/out."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.device = URLSafeTimedSerializer(site.secret, salt=DEVICE_SALT)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/sign/in", self.sign_in, methods=["GET", "POST"], name="sign_in"),
            Route("/sign/link/{token}", self.link, name="sign_link"),
            Route("/sign/out", self.sign_out, methods=["POST"], name="sign_out"),
        ]

    def page(self, request: Request, *, message: str | None = None, status: int = 200, email: str = "",
             lang: str | None = None, headers: dict[str, str] | None = None) -> Response:
        lang = dashboard_lang(lang or request.query_params.get("lang") or request.session.get("lang")
                              or request.headers.get("accept-language", "")[:2])
        return self.site.templates.TemplateResponse(
            request, "sign_in.html",
            {"lang": lang, "message": message, "email": email, "next": _next_of(request.query_params.get("next"))},
            status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                         "Content-Security-Policy": PAGE_POLICY, **(headers or {})})

    async def sign_in(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._password(request)
        query = request.query_params
        if "apiKey" in query or "uid" in query:
            return await self._fast(request)
        if await signed_in(self.site, request) is not None:
            return _away(_next_of(query.get("next")))
        message = query.get("m")
        refused = message in ("sign.badKey", "sign.badLink", "sign.fastLoginOff")
        return self.page(request, message=text(dashboard_lang(query.get("lang")), message)
                         if message in MESSAGES else None, status=403 if refused else 200)

    def _refused(self, message_key: str, lang: str | None) -> Response:
        """A refused link: the sign-in page with the message, at an address that holds no secret.
        The browser's session, if any, is left as it was (a link must not sign anyone out)."""
        query = {"m": message_key, **({"lang": dashboard_lang(lang)} if lang else {})}
        return _away("/sign/in?" + urllib.parse.urlencode(query))

    async def _fast(self, request: Request) -> Response:
        """The guide's fast login: the key's partner must own the user's account."""
        query = request.query_params
        key, uid, lang = query.get("apiKey", ""), query.get("uid", ""), query.get("lang")
        if not self.site.settings.fast_login:
            return self._refused("sign.fastLoginOff", lang)
        status = query.get("status") or "online"
        user = None
        if key and uid.isascii() and uid.isdigit() and len(uid) < 19 and len(key) < 200:
            async with self.site.db.read() as db:
                principal = await authenticate(db, key_hash=hash_key(key))
                if principal is not None:
                    user = await service.partner_user(db, partner_id=principal.partner_id, user_id=int(uid))
        if user is None:
            log.info("fast login refused for uid %.20r: wrong key, or a user of another partner", uid)
            return self._refused("sign.badKey", lang)
        await _start_session(self.site, request, user, lang=lang, status=status if status in STATUSES else "online")
        log.info("user %d of account %d signed in by the fast login", user.user_id, user.account_id)
        return _away(HOME)

    async def link(self, request: Request) -> Response:
        token = request.path_params["token"]
        async with self.site.db.transaction() as db:
            user = await service.use_link(db, token)
        if user is None:
            return self._refused("sign.badLink", request.query_params.get("lang"))
        await _start_session(self.site, request, user)
        log.info("user %d of account %d signed in by a one-time link", user.user_id, user.account_id)
        return _away(HOME)

    async def _password(self, request: Request) -> Response:
        form = await request.form()
        email = str(form.get("email") or "").strip()[:MAX_EMAIL]
        password = str(form.get("password") or "")
        lang = dashboard_lang(request.session.get("lang") or request.headers.get("accept-language", "")[:2])
        address = request.client.host if request.client else "-"
        login = email_key(email)
        async with self.site.db.read() as db:
            row = await db.fetchrow(
                "SELECT u.id, u.account_id, a.partner_id, u.password_hash FROM users u"
                " JOIN accounts a ON a.id = u.account_id WHERE u.email_key = $1", login)
        device = self._known_device(request, row[0] if row else None)
        address_key = service.key_of(service.ADDRESS, address)
        # counted before the password is checked, each in one statement: concurrent guesses are all counted
        if device is not None:  # a browser the user signed in from: only its own growing lock
            keys = [(service.DEVICE, service.key_of(service.DEVICE, device))]
        else:
            keys = service.password_keys(login, address)
        async with self.site.db.transaction() as db:
            wait, limit = await service.attempt_all(db, keys)
        if wait:
            message = "sign.slowDown" if limit is service.ADDRESS else "sign.locked"
            return self.page(request, message=text(lang, message, seconds=wait), status=429, email=email,
                             headers={"Retry-After": str(wait)})
        ok = False
        if 0 < len(password) <= MAX_PASSWORD:
            # an unknown e-mail is verified against a hash too: it takes as long as a wrong password
            ok, _ = await verify_password(row[3] if row else await dummy_hash(), password)
            ok = ok and row is not None
        if not ok:
            log.info("password sign-in failed from %s", address)
            return self.page(request, message=text(lang, "sign.wrong"), status=401, email=email)
        assert row is not None
        async with self.site.db.transaction() as db:
            await service.succeeded(db, forget=[key for limit, key in keys if limit is not service.ADDRESS],
                                    address_key=address_key)
        user = LinkUser(row[0], row[1], row[2])
        await _start_session(self.site, request, user, lang=request.session.get("lang"))
        log.info("user %d of account %d signed in with a password", user.user_id, user.account_id)
        response = _away(_next_of(form.get("next")))
        cookie = self.device.dumps([user.user_id, device or secrets.token_urlsafe(12)])
        response.set_cookie(DEVICE_COOKIE, cookie, max_age=DEVICE_SECONDS, httponly=True,
                            samesite="lax", secure=request.url.scheme == "https", path="/sign/")
        return response

    def _known_device(self, request: Request, user_id: int | None) -> str | None:
        """This browser's mark if it signed ``user_id`` in before (its device cookie), else None."""
        cookie = request.cookies.get(DEVICE_COOKIE)
        if not cookie or user_id is None:
            return None
        try:
            signed_for, mark = self.device.loads(cookie, max_age=DEVICE_SECONDS)
        except (BadData, TypeError, ValueError):
            return None
        return mark if signed_for == user_id and isinstance(mark, str) and len(mark) <= 32 else None

    async def sign_out(self, request: Request) -> Response:
        """Ends the session here and for any copy of its cookie (its id is remembered as ended)."""
        who = await signed_in(self.site, request)
        lang = who.lang if who is not None else request.session.get("lang")
        sid, since = request.session.get("sid"), request.session.get("since")
        if isinstance(sid, str) and isinstance(since, int):
            async with self.site.db.transaction() as db:
                await service.end_session(db, sid, since + SESSION_SECONDS)
        request.session.clear()
        return _away("/sign/in?m=sign.signedOut" + (f"&lang={lang}" if lang else ""))


def sign_in_url(request: HTTPConnection, message_key: str | None = None) -> str:
    """The sign-in page, coming back to this request's page afterwards."""
    query: dict[str, Any] = {"next": request.url.path + (f"?{request.url.query}" if request.url.query else "")}
    if message_key:
        query["m"] = message_key
    return "/sign/in?" + urllib.parse.urlencode(query)
