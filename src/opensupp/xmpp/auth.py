"""The endpoint Prosody's ``mod_auth_opensupp`` asks: is this agent's password right, does this
agent exist.

``POST /xmpp/auth/check_password`` (form: ``user``, ``server``, ``pass``, ``ip``: the XMPP
client's address) and ``POST /xmpp/auth/user_exists`` (``user``, ``server``) answer ``true`` or
``false`` as text/plain. Only from a loopback address (Prosody runs beside opensupp), only with
the setup's shared secret (HTTP Basic; opensupp keeps its SHA-256), bodies of at most 4 KiB; the
password is in the body, never in a URL, and never logged.

A login is ``uid<ID>`` (the guide: "use uidXXXX@... as login", the password the partner API
set); an e-mail, a user of another domain or a deleted user is refused. Attempts are counted
before the password is checked, on the very keys of the dashboard's sign-in page
(signin/service.py): the client's address, the login at that address, the login from anywhere.
The login is the user's e-mail, so a guesser gets no more tries by switching between the
dashboard and XMPP. An unknown user is verified against a dummy hash, so it takes as long as a
wrong password. A right password records the login (``users.xmpp_login_at``): the bridge then
writes the account's visitors to this agent, online or not.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import urllib.parse

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from opensupp.db import Database
from opensupp.passwords import dummy_hash, verify_password
from opensupp.signin import service
from opensupp.timeutil import now
from opensupp.xmpp.config import XmppConfig
from opensupp.xmpp.jids import user_of

log = logging.getLogger("opensupp.xmpp")

MAX_BODY = 4096
MAX_PASSWORD = 1024


class XmppAuth:
    def __init__(self, config: XmppConfig, db: Database) -> None:
        self.config = config
        self.db = db

    def routes(self) -> list[Route]:
        return [Route("/xmpp/auth/check_password", self.check_password, methods=["POST"]),
                Route("/xmpp/auth/user_exists", self.user_exists, methods=["POST"])]

    async def _form(self, request: Request) -> dict[str, str] | Response:
        """The request's fields, or the refusal to answer."""
        client = request.client.host if request.client else ""
        try:
            loopback = ipaddress.ip_address(client).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            log.warning("an XMPP authentication request from %s was refused: only Prosody on this machine may ask",
                        client or "-")
            return _text("only Prosody on this machine may ask\n", 403)
        if not self._authorized(request.headers.get("authorization", "")):
            log.warning("an XMPP authentication request without the setup's secret was refused")
            return _text("the shared secret is wrong\n", 401, {"WWW-Authenticate": 'Basic realm="opensupp-xmpp"'})
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY:
            return _text(f"a form of at most {MAX_BODY} bytes, with its Content-Length\n", 413)
        body = await request.body()
        if len(body) > MAX_BODY:
            return _text(f"a form of at most {MAX_BODY} bytes\n", 413)
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                                           max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            return _text("not a form\n", 400)
        return {name: values[0] for name, values in fields.items()}

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, secret = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.config.auth_secret_matches(secret) and user == "prosody"

    async def user_exists(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        user_id = user_of(form.get("user", "")) if form.get("server") == self.config.domain else None
        if user_id is None:
            return _answer(False)
        async with self.db.read() as db:
            found = await db.fetchval("SELECT 1 FROM users WHERE id = $1", user_id)
        return _answer(found is not None)

    async def check_password(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        user, password = form.get("user", ""), form.get("pass", "")
        user_id = user_of(user) if form.get("server") == self.config.domain else None
        address = _address(form.get("ip", ""))
        row = None
        if user_id is not None:
            async with self.db.read() as db:
                row = await db.fetchrow("SELECT id, account_id, email_key, password_hash FROM users WHERE id = $1",
                                        user_id)
        # the keys of the dashboard's sign-in (its login is the e-mail): one count for both ways in
        login = row[2] if row is not None else (user[:64] or "-")
        keys = service.password_keys(login, address)
        async with self.db.transaction() as db:
            wait, _ = await service.attempt_all(db, keys)
        if wait:
            log.info("XMPP login of %.40r from %s refused: locked for %d s more", user, address, wait)
            return _answer(False)
        ok = False
        if 0 < len(password) <= MAX_PASSWORD:
            ok, _ = await verify_password(row[3] if row is not None else await dummy_hash(), password)
            ok = ok and row is not None
        if not ok:
            log.info("XMPP login of %.40r from %s failed", user, address)
            return _answer(False)
        assert row is not None
        async with self.db.transaction() as db:
            await service.succeeded(db, forget=[key for limit, key in keys if limit is not service.ADDRESS],
                                    address_key=service.key_of(service.ADDRESS, address))
            await db.execute("UPDATE users SET xmpp_login_at = $1 WHERE id = $2", now(), row[0])
        log.info("user %d of account %d logged in with XMPP from %s", row[0], row[1], address)
        return _answer(True)


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return "-"


def _answer(yes: bool) -> Response:
    return _text("true" if yes else "false", 200)


def _text(body: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return PlainTextResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})
