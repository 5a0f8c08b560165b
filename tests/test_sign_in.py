"""Signing in to the dashboard (site/auth.py, signin/): the guide's fast login, one-time links
from the partner API (and the SDK), e-mail and password with lockouts, sessions that end when
the user is deleted or their password changes, sign-out, and the pages' texts in every
dashboard language. On SQLite and PostgreSQL, through the one outer app."""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import client_for, new_key
from opensupp.app import create_app
from opensupp.config import Settings
from opensupp.signin import service
from opensupp.site import i18n

pytestmark = pytest.mark.anyio

HTML = {"accept": "text/html"}
PASSWORD = "correct horse battery"


@pytest.fixture
async def app(database_url: str, tmp_path: Any) -> AsyncIterator[Any]:
    application = create_app(Settings(database_url=database_url, data_dir=tmp_path, key_cache_seconds=0,
                                      public_url="https://chat.example.com"))
    await application.startup()
    try:
        yield application
    finally:
        await application.shutdown()


class Partner:
    def __init__(self, app: Any, key: str, api: httpx.AsyncClient) -> None:
        self.app, self.key, self.api = app, key, api

    async def account(self) -> str:
        answer = await self.api.post("/accounts/create", json={"title": "Shop", "lang": "en"})
        assert answer.status_code == 200, answer.text
        return answer.json()["id"]

    async def user(self, aid: str, name: str, role: str = "agent", lang: str = "en") -> User:
        """A user of the account; e-mails are unique on the server, and the database is the session's."""
        email = f"{name}.{secrets.token_hex(4)}@Example.com"
        answer = await self.api.post(f"/accounts/{aid}/users/create", json={
            "email": email, "password": PASSWORD, "fullname": name.title(), "role": role, "lang": lang})
        assert answer.status_code == 200, answer.text
        return User(answer.json()["id"], email)


@dataclass
class User:
    id: str
    email: str


@pytest.fixture
async def partner(app: Any) -> AsyncIterator[Partner]:
    key = await new_key(app)
    async with client_for(app, key) as api:
        yield Partner(app, key, api)


def browser(app: Any) -> httpx.AsyncClient:
    """A browser at an address of its own: keeps cookies, does not follow redirects (the tests read them)."""
    address = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                             base_url="http://chat.test", headers=HTML)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def password_sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await client.get("/sign/in")
    return await client.post("/sign/in", data={"email": email, "password": password, "csrf_token": csrf_of(form),
                                               "next": "/dashboard"})


# --------------------------------------------------------------------------- the guide's fast login


async def test_the_guides_fast_login_signs_the_user_in_and_leaves_no_key_behind(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as b:
        answer = await b.get(f"/sign/in?apiKey={partner.key}&uid={anna.id}&lang=cs&status=away")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/dashboard"  # the key is gone from the address bar
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
        cookie = answer.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert partner.key not in cookie
        session = b.cookies.get("opensupp_session")
        assert session and partner.key not in session
        # signed in: the sign-in page sends the user on, in the language and status the link asked for
        again = await b.get("/sign/in")
        assert again.status_code == 303 and again.headers["location"] == "/dashboard"


async def test_the_fast_login_key_is_redacted_in_the_access_log(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    stream = io.StringIO()
    app.access.stream = stream
    async with browser(app) as b:
        await b.get(f"/sign/in?apiKey={partner.key}&uid={anna.id}")
    app.access.flush()
    logged = stream.getvalue()
    assert "/sign/in?apiKey=[redacted]" in logged, logged
    assert partner.key not in logged


@pytest.mark.parametrize("case", ["wrong key", "another partner's user", "no such user", "key only", "bad uid"])
async def test_a_wrong_fast_login_gets_the_sign_in_page_without_the_key_and_no_session(app, partner, case):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    other = Partner(app, await new_key(app), client_for(app, None))
    other.api = client_for(app, other.key)
    async with other.api:
        their_uid = (await other.user(await other.account(), "bob")).id
    query = {
        "wrong key": f"apiKey=osk_{'x' * 43}&uid={anna.id}",
        "another partner's user": f"apiKey={partner.key}&uid={their_uid}",
        "no such user": f"apiKey={partner.key}&uid=999999",
        "key only": f"apiKey={partner.key}",
        "bad uid": f"apiKey={partner.key}&uid=1%20OR%201=1",
    }[case]
    async with browser(app) as b:
        answer = await b.get(f"/sign/in?{query}&lang=cs")
        assert answer.status_code == 303  # away from the address that holds the key
        assert answer.headers["location"] == "/sign/in?m=sign.badKey&lang=cs"
        assert answer.headers["cache-control"] == "no-store" and answer.headers["referrer-policy"] == "no-referrer"
        page = await b.get(answer.headers["location"])
        assert page.status_code == 403
        assert "Tento přihlašovací odkaz není platný" in page.text
        assert 'name="password"' in page.text  # the sign-in page, to sign in otherwise
        assert "Bob" not in page.text and "Anna" not in page.text
        assert (await b.get("/sign/in")).status_code == 200  # not signed in


async def test_a_bad_link_does_not_sign_a_signed_in_browser_out(app, partner):
    """Another site can send a browser to any link (the cookie is SameSite=Lax): a refused one
    changes nothing, as sign-out needs the CSRF token."""
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as b:
        await b.get(f"/sign/in?apiKey={partner.key}&uid={anna.id}")
        assert (await b.get("/sign/link/not-a-token")).headers["location"] == "/sign/in?m=sign.badLink"
        assert (await b.get(f"/sign/in?apiKey=osk_{'x' * 43}&uid={anna.id}")).status_code == 303
        assert (await b.get("/sign/in")).headers.get("location") == "/dashboard"  # still signed in


async def test_the_fast_login_can_be_switched_off(database_url, tmp_path, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    closed = create_app(Settings(database_url=database_url, data_dir=tmp_path, fast_login=False))
    await closed.startup()
    try:
        async with browser(closed) as b:
            answer = await b.get(f"/sign/in?apiKey={partner.key}&uid={anna.id}")
            assert answer.headers["location"] == "/sign/in?m=sign.fastLoginOff"
            page = await b.get(answer.headers["location"])
            assert page.status_code == 403 and "one-time sign-in link" in page.text
            assert (await b.get("/sign/in")).status_code == 200  # not signed in
    finally:
        await closed.shutdown()


async def test_digits_of_other_scripts_are_refused_not_a_crash(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as b:
        answer = await b.get(f"/sign/in?apiKey={partner.key}&uid=%C2%B2")  # "²": str.isdigit says yes, int() no
        assert answer.headers["location"] == "/sign/in?m=sign.badKey"
        await b.get(f"/sign/in?apiKey={partner.key}&uid={anna.id}")
        answer = await b.get("/dashboard/conversations/%C2%B2", headers={"accept": "application/json"})
        assert 400 <= answer.status_code < 500 and answer.json()["error"]


# --------------------------------------------------------------------------- one-time links


async def test_a_login_link_works_once_and_not_twice(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    answer = await partner.api.post(f"/accounts/{aid}/users/{anna.id}/login-link", json={})
    assert answer.status_code == 200, answer.text
    link = answer.json()
    assert set(link) == {"url", "expiresAt"}
    assert link["url"].startswith("https://chat.example.com/sign/link/")
    path = link["url"].removeprefix("https://chat.example.com")
    async with app.db.read() as session:  # only the token's SHA-256 is kept
        stored = await session.fetch("SELECT token_hash FROM login_links WHERE user_id = $1", int(anna.id))
    token = path.rsplit("/", 1)[1]
    assert all(token.encode() not in bytes(row[0]) for row in stored) and len(stored) == 1
    async with browser(app) as first, browser(app) as second:
        used = await first.get(path)
        assert used.status_code == 303 and used.headers["location"] == "/dashboard"
        again = await second.get(path)
        assert again.status_code == 303 and again.headers["location"] == "/sign/in?m=sign.badLink"
        page = await second.get(again.headers["location"])
        assert page.status_code == 403 and "it was used already" in page.text
        assert (await second.get("/sign/in")).status_code == 200  # the second browser is not signed in


async def test_a_login_link_expires(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with app.db.transaction() as session:
        token, _ = await service.create_link(session, account_id=int(aid), user_id=int(anna.id), seconds=60)
        await session.execute("UPDATE login_links SET expires_at = expires_at - 61")
    async with browser(app) as b:
        assert (await b.get(f"/sign/link/{token}")).headers["location"] == "/sign/in?m=sign.badLink"


async def test_two_browsers_racing_with_one_link_sign_in_once(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    url = (await partner.api.post(f"/accounts/{aid}/users/{anna.id}/login-link", json={})).json()["url"]
    path = url.removeprefix("https://chat.example.com")
    clients = [browser(app) for _ in range(6)]
    try:
        answers = await asyncio.gather(*(c.get(path) for c in clients))
    finally:
        for c in clients:
            await c.aclose()
    assert sorted(a.headers["location"] for a in answers) == ["/dashboard"] + ["/sign/in?m=sign.badLink"] * 5


async def test_login_links_are_the_partners_own(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with client_for(app, await new_key(app)) as stranger:
        answer = await stranger.post(f"/accounts/{aid}/users/{anna.id}/login-link", json={})
    assert answer.status_code == 404, answer.text
    other_aid = await partner.account()
    answer = await partner.api.post(f"/accounts/{other_aid}/users/{anna.id}/login-link", json={})
    assert answer.status_code == 404  # the user is not that account's
    async with app.db.read() as session:
        assert await session.fetchval("SELECT count(*) FROM login_links WHERE user_id = $1", int(anna.id)) == 0


async def test_the_sdk_mints_login_links(app, partner):
    from opensupp_client import AsyncClient

    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    async with AsyncClient(api_key=partner.key, base_url="http://api.test", http_client=http) as sdk:
        link = await sdk.users.login_link(aid, anna.id)
    assert link["url"].startswith("https://chat.example.com/sign/link/") and link["expiresAt"].endswith("Z")
    async with browser(app) as b:
        assert (await b.get(link["url"].removeprefix("https://chat.example.com"))).status_code == 303


async def test_the_link_token_is_redacted_in_the_access_log(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    url = (await partner.api.post(f"/accounts/{aid}/users/{anna.id}/login-link", json={})).json()["url"]
    token = url.rsplit("/", 1)[1]
    stream = io.StringIO()
    app.access.stream = stream
    async with browser(app) as b:
        await b.get(url.removeprefix("https://chat.example.com"))
        await b.get(f"/sign/%6Cink/{token}x")  # the same route, spelled otherwise
    app.access.flush()
    assert stream.getvalue().count("/sign/link/[redacted]") == 2
    assert token not in stream.getvalue()


# --------------------------------------------------------------------------- e-mail and password


async def test_a_password_signs_in_and_a_wrong_one_does_not(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as b:
        wrong = await password_sign_in(b, anna.email, "not the password")
        assert wrong.status_code == 401 and "The e-mail or the password is wrong." in wrong.text
        unknown = await password_sign_in(b, "nobody@example.com", PASSWORD)
        assert unknown.status_code == 401 and unknown.text.count("is wrong") == wrong.text.count("is wrong")
        right = await password_sign_in(b, anna.email.upper(), PASSWORD)  # the e-mail in any case
        assert right.status_code == 303 and right.headers["location"] == "/dashboard"
        assert "opensupp_device" in right.headers.get("set-cookie", "")


async def test_the_sign_in_form_needs_its_csrf_token(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as b:
        await b.get("/sign/in")
        answer = await b.post("/sign/in", data={"email": anna.email, "password": PASSWORD})
        assert answer.status_code == 403


async def test_next_never_leaves_the_site(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    for target, expected in [("//evil.example/x", "/dashboard"), ("https://evil.example/", "/dashboard"),
                             ("/\\evil.example", "/dashboard"), ("/dashboard?c=5", "/dashboard?c=5")]:
        async with browser(app) as b:
            form = await b.get("/sign/in")
            answer = await b.post("/sign/in", data={"email": anna.email, "password": PASSWORD,
                                                    "csrf_token": csrf_of(form), "next": target})
            assert answer.status_code == 303 and answer.headers["location"] == expected, target


async def test_failed_passwords_lock_the_login_for_a_while_that_ends(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as attacker:
        for _ in range(service.USER_FREE):
            assert (await password_sign_in(attacker, anna.email, "guess")).status_code == 401
        locked = await password_sign_in(attacker, anna.email, "guess")
        assert locked.status_code == 401  # the 6th failure is counted, and locks
        refused = await password_sign_in(attacker, anna.email, PASSWORD)  # even the right one, now
        assert refused.status_code == 429 and "Too many failed attempts" in refused.text
        wait = int(refused.headers["retry-after"])
        assert 0 < wait <= service.USER_FIRST_LOCK
        # refused attempts are not counted: the lock does not grow while the attacker keeps trying
        for _ in range(5):
            assert (await password_sign_in(attacker, anna.email, "guess")).status_code == 429
        async with app.db.read() as session:
            assert await session.fetchval("SELECT failures FROM sign_in_attempts WHERE key LIKE $1",
                                          f"login:{anna.email.casefold()}:%") == 6
        # the lock ends by itself
        async with app.db.transaction() as session:
            await session.execute("UPDATE sign_in_attempts SET locked_until = 0")
        assert (await password_sign_in(attacker, anna.email, PASSWORD)).status_code == 303


async def test_concurrent_guesses_are_each_counted(app, partner):
    """Counted before the slow check, in one statement each: a burst gets no more guesses than
    one at a time would."""
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as attacker:
        form = await attacker.get("/sign/in")
        data = {"email": anna.email, "password": "guess", "csrf_token": csrf_of(form)}
        answers = await asyncio.gather(*(attacker.post("/sign/in", data=data) for _ in range(15)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * (service.USER_FREE + 1) + [429] * (15 - service.USER_FREE - 1)


async def test_a_lock_from_one_address_does_not_lock_the_user_elsewhere(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as attacker, browser(app) as hers:
        for _ in range(service.USER_FREE + 1):
            await password_sign_in(attacker, anna.email, "guess")
        assert (await password_sign_in(attacker, anna.email, PASSWORD)).status_code == 429
        assert (await password_sign_in(hers, anna.email, PASSWORD)).status_code == 303


async def test_a_login_locked_from_everywhere_still_opens_from_a_browser_that_signed_in_before(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as hers, browser(app) as stranger:
        assert (await password_sign_in(hers, anna.email, PASSWORD)).status_code == 303
        # as after LOGIN_FREE guesses from many addresses
        async with app.db.transaction() as session:
            await session.execute(
                "INSERT INTO sign_in_attempts (key, failures, window_start, locked_until) VALUES ($1, $2, $3, $4)",
                service.key_of(service.LOGIN, anna.email.casefold()), service.LOGIN_FREE + 1, int(time.time()),
                int(time.time()) + service.USER_MAX_LOCK)
        assert (await password_sign_in(stranger, anna.email, PASSWORD)).status_code == 429
        hers.cookies.delete("opensupp_session")  # signed out, the device cookie kept
        assert (await password_sign_in(hers, anna.email, PASSWORD)).status_code == 303
        async with app.db.transaction() as session:
            await session.execute("DELETE FROM sign_in_attempts WHERE key = $1",
                                  service.key_of(service.LOGIN, anna.email.casefold()))


async def test_users_signing_in_behind_one_address_do_not_lock_it(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as office:
        for _ in range(service.ADDRESS_FAILURES + 2):
            assert (await password_sign_in(office, anna.email, PASSWORD)).status_code == 303
            office.cookies.delete("opensupp_session")
            office.cookies.delete("opensupp_device")


async def test_one_address_is_slowed_down_across_logins(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as b:
        for n in range(service.ADDRESS_FAILURES):
            answer = await password_sign_in(b, f"user{n}@example.com", "guess")
            assert answer.status_code == 401, n
        answer = await password_sign_in(b, anna.email, PASSWORD)
        assert answer.status_code == 429 and "from your address" in answer.text
        assert 0 < int(answer.headers["retry-after"]) <= service.ADDRESS_WINDOW


# --------------------------------------------------------------------------- sessions


async def test_a_session_ends_when_the_user_is_deleted_or_the_password_changes(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    bob = await partner.user(aid, "bob")
    async with browser(app) as a, browser(app) as b:
        for client, uid in ((a, anna.id), (b, bob.id)):
            assert (await client.get(f"/sign/in?apiKey={partner.key}&uid={uid}")).status_code == 303
            assert (await client.get("/sign/in")).status_code == 303  # signed in
        changed = await partner.api.post(f"/accounts/{aid}/users/{anna.id}/update", json={"password": "a new one!"})
        assert changed.status_code == 200
        assert (await a.get("/sign/in")).status_code == 200  # signed out
        assert (await partner.api.get(f"/accounts/{aid}/users/{bob.id}/delete")).status_code == 204
        assert (await b.get("/sign/in")).status_code == 200


async def test_sign_out_ends_the_session(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna", lang="cs")
    async with browser(app) as b:
        await b.get(f"/sign/in?apiKey={partner.key}&uid={anna.id}")
        assert (await b.post("/sign/out")).status_code == 403  # a cross-site form cannot sign anyone out
        out = await b.post("/sign/out", headers={"x-csrf-token": await _session_csrf(b)})
        assert out.status_code == 303 and out.headers["location"] == "/sign/in?m=sign.signedOut&lang=cs"
        page = await b.get(out.headers["location"])
        assert page.status_code == 200 and "Jste odhlášeni." in page.text
        assert (await b.get("/dashboard")).status_code == 303  # to the sign-in page


async def test_a_copy_of_a_signed_out_cookie_signs_no_one_in(app, partner):
    aid = await partner.account()
    anna = await partner.user(aid, "anna")
    async with browser(app) as b, browser(app) as thief:
        await b.get(f"/sign/in?apiKey={partner.key}&uid={anna.id}")
        thief.cookies.set("opensupp_session", b.cookies["opensupp_session"])
        assert (await thief.get("/dashboard")).status_code == 200  # a copy works while the session lasts
        await b.post("/sign/out", headers={"x-csrf-token": await _session_csrf(b)})
        assert (await thief.get("/dashboard")).status_code == 303


async def _session_csrf(client: httpx.AsyncClient) -> str:
    """The session's CSRF token, as the signed-in pages' forms carry it: read off a page that shows a form."""
    page = await client.get("/dashboard")
    if page.status_code == 200 and "csrf_token" in page.text:
        return csrf_of(page)
    raise AssertionError("no signed-in page with a form to read the CSRF token from")


# --------------------------------------------------------------------------- texts


def test_every_dashboard_language_says_every_text():
    for surface in sorted(i18n.HERE.glob("*.json")):
        texts = json.loads(surface.read_text("utf-8"))
        assert set(texts) == set(i18n.DASHBOARD_LANGS), surface.name
        for lang in i18n.DASHBOARD_LANGS:
            missing = set(texts["en"]) - set(texts[lang])
            assert not missing, f"{surface.name}: {lang} lacks {sorted(missing)}"
            for key, value in texts[lang].items():
                assert re.findall(r"{(\w*)}", value) == re.findall(r"{(\w*)}", texts["en"][key]), (surface, key)


async def test_the_sign_in_page_is_never_framed_and_runs_no_script(app):
    async with browser(app) as b:
        page = await b.get("/sign/in")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy and "script-src" not in policy


async def test_the_sign_in_page_speaks_czech(app):
    async with browser(app) as b:
        page = await b.get("/sign/in?lang=cs")
        assert page.status_code == 200 and '<html lang="cs">' in page.text and "Přihlásit se" in page.text
        english = await b.get("/sign/in", headers={"accept-language": "de-DE"})
        assert '<html lang="en">' in english.text and ">Sign in<" in english.text

