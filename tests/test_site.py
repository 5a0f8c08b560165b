"""The web pages (opensupp/site) behind the one outer app (web/front.py): the start page,
static files and their caching, templates, signed sessions, CSRF, a websocket, and which
paths go where."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import client_for, opensupp, start_server, stop_server
from opensupp import __version__
from opensupp.app import create_app
from opensupp.config import Settings
from opensupp.site.static import IMMUTABLE

pytestmark = pytest.mark.anyio

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
async def site(database_url: str, tmp_path: Any) -> AsyncIterator[Any]:
    application = create_app(Settings(database_url=database_url, data_dir=tmp_path, test_routes=True))
    await application.startup()
    try:
        yield application
    finally:
        await application.shutdown()


@pytest.fixture
async def web(site: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(site) as client:
        yield client


def token_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


# --------------------------------------------------------------------------- the start page, and where paths go


async def test_the_start_page_says_what_the_server_is(web):
    r = await web.get("/")  # no apiKey: it is a page, not an API call
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert f"opensupp <small>{__version__}</small>" in r.text
    assert 'href="/docs"' in r.text and 'href="/openapi.json"' in r.text
    assert "live-chat provisioning server" in r.text


async def test_unknown_paths_are_404_json_for_clients_and_a_page_for_browsers(web):
    r = await web.get("/nope")
    assert r.status_code == 404
    assert r.json() == {"error": "NotFound", "message": "No such path: /nope. See /docs for the API."}
    r = await web.get("/nope/<b>", headers=HTML)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>404 NotFound</h1>" in r.text
    assert "&lt;b&gt;" in r.text and "<b>" not in r.text
    r = await web.post("/", data={"a": "b"})  # a path the pages answer, not with POST: 405 before any CSRF check
    assert r.status_code == 405
    assert r.json()["error"] == "MethodNotAllowed"


async def test_api_paths_still_go_to_the_api(web):
    for path in ("/accounts/", "//accounts/", "/test", "/batch"):
        r = await web.get(f"http://api.test{path}")
        assert (r.status_code, r.json()) == (401, {"error": "AuthError", "message": "No apiKey given."}), path
    assert (await web.get("/healthz")).json() == {"status": "ok"}
    assert (await web.get("/docs")).status_code == 200
    assert (await web.get("/openapi.json")).json()["info"]


# --------------------------------------------------------------------------- static files


async def test_fingerprinted_static_files_are_cached_for_a_year(site, web):
    page = (await web.get("/")).text
    url = re.search(r'<link rel="stylesheet" href="([^"]+)"', page).group(1)
    assert re.fullmatch(r"/static/site\.[0-9a-f]{12}\.css", url), url
    r = await web.get(url)
    assert r.status_code == 200
    assert r.headers["cache-control"] == IMMUTABLE == "public, max-age=31536000, immutable"
    assert r.headers["content-type"].startswith("text/css")
    etag = r.headers["etag"]
    assert etag == f'"{url.split(".")[-2]}"'  # the content hash
    assert "body" in r.text
    again = await web.get(url, headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    # a name with another hash (an old deploy's) is not this file
    assert (await web.get("/static/site.000000000000.css")).status_code == 404


async def test_plain_static_names_revalidate_with_their_etag(web):
    r = await web.get("/static/site.css")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-cache"
    etag = r.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{12}"', etag)
    r = await web.get("/static/site.css", headers={"if-none-match": f'W/"x", {etag}'})
    assert r.status_code == 304
    assert r.headers["etag"] == etag
    assert (await web.get("/static/site.css", headers={"if-none-match": '"other"'})).status_code == 200
    assert (await web.get("/static/../app.py")).status_code == 404
    assert (await web.get("/static/nope.css")).status_code == 404


# --------------------------------------------------------------------------- templates, sessions, CSRF


async def test_templates_escape_what_they_show(web):
    form = await web.get("/_test/form")
    r = await web.post("/_test/form", data={"csrf_token": token_of(form.text), "said": '<script>alert("x")</script>'})
    assert r.status_code == 200
    assert "You said: &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in r.text
    assert "<script>" not in r.text


async def test_sessions_are_signed_and_a_tampered_cookie_is_refused(web):
    assert (await web.get("/_test/session")).json() == {"count": 1}
    assert (await web.get("/_test/session")).json() == {"count": 2}
    cookie = web.cookies["opensupp_session"]
    data, _, signature = cookie.rpartition(".")
    forged = data.replace(data[-2], "A" if data[-2] != "A" else "B") + "." + signature  # other data, old signature
    web.cookies.clear()
    web.cookies.set("opensupp_session", forged)
    assert (await web.get("/_test/session")).json() == {"count": 1}  # a new session, not the forged one
    web.cookies.clear()
    web.cookies.set("opensupp_session", cookie)
    assert (await web.get("/_test/session")).json() == {"count": 3}


async def test_session_cookies_are_httponly_lax_and_secure_over_https(site):
    async with client_for(site) as plain:
        header = (await plain.get("/_test/session")).headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "secure" not in header
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site), base_url="https://site.test") as secure:
        header = (await secure.get("/_test/session")).headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "; secure" in header


async def test_a_form_without_its_csrf_token_is_refused(web):
    token = token_of((await web.get("/_test/form")).text)
    for data in ({"said": "hi"}, {"said": "hi", "csrf_token": ""}, {"said": "hi", "csrf_token": token[:-1] + "x"}):
        r = await web.post("/_test/form", data=data)
        assert r.status_code == 403, data
        assert r.json()["error"] == "Forbidden"
    r = await web.post("/_test/form", data={"said": "hi"}, headers=HTML)
    assert r.status_code == 403 and "<h1>403 Forbidden</h1>" in r.text
    # a multipart form, and a script's header, are checked alike
    r = await web.post("/_test/form", data={"said": "hi", "csrf_token": token}, files={"f": ("a.txt", b"x")})
    assert r.status_code == 200 and "You said: hi" in r.text
    r = await web.post("/_test/form", data={"said": "hi"}, files={"f": ("a.txt", b"x")})
    assert r.status_code == 403
    assert (await web.post("/_test/form", json={}, headers={"x-csrf-token": token})).status_code == 200
    assert (await web.post("/_test/form", json={}, headers={"x-csrf-token": "nope"})).status_code == 403
    r = await web.post("/_test/form", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and r.json()["error"] == "InvalidForm"
    assert (await web.post("/_test/form", data={"said": "hi", "csrf_token": token})).status_code == 200


async def test_a_token_is_good_only_in_its_own_session(site):
    async with client_for(site) as alice, client_for(site) as mallory:
        token = token_of((await alice.get("/_test/form")).text)
        await mallory.get("/_test/form")  # mallory has a session, and its own token
        assert (await mallory.post("/_test/form", data={"said": "hi", "csrf_token": token})).status_code == 403
        assert (await alice.post("/_test/form", data={"said": "hi", "csrf_token": token})).status_code == 200


# --------------------------------------------------------------------------- the secret key


async def test_the_secret_key_is_generated_once_and_kept_private(database_url, tmp_path):
    first = create_app(Settings(database_url=database_url, data_dir=tmp_path, test_routes=True))
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = path.read_text()
    await first.startup()
    try:
        async with client_for(first) as c:
            await c.get("/_test/session")
            cookie = c.cookies["opensupp_session"]
    finally:
        await first.shutdown()
    second = create_app(Settings(database_url=database_url, data_dir=tmp_path, test_routes=True))
    assert path.read_text() == key
    await second.startup()
    try:  # a restart keeps the sessions
        async with client_for(second) as c:
            c.cookies.set("opensupp_session", cookie)
            assert (await c.get("/_test/session")).json() == {"count": 2}
    finally:
        await second.shutdown()


def test_a_set_secret_key_is_used_and_nothing_is_written(database_url, tmp_path):
    with pytest.raises(ValueError):
        Settings(database_url=database_url, data_dir=tmp_path, secret_key="short")
    create_app(Settings(database_url=database_url, data_dir=tmp_path, secret_key="k" * 40))
    assert not (tmp_path / "secret_key").exists()


# --------------------------------------------------------------------------- a real server: the websocket


@pytest.mark.slow
def test_a_websocket_echoes_through_the_real_server(database_url, tmp_path):
    server = start_server(database_url, tmp_path, env={"OPENSUPP_TEST_ROUTES": "1", "OPENSUPP_DATA_DIR": str(tmp_path)})
    try:
        ws_url = server.url.replace("http://", "ws://")
        with connect(f"{ws_url}/_test/echo", additional_headers={"X-Request-Id": "ws-1"}) as ws:
            assert ws.response.headers["x-request-id"] == "ws-1"
            for message in ("hello", "здравствуй", "x" * 10_000):
                ws.send(message)
                assert ws.recv(timeout=5) == message
        with pytest.raises(InvalidStatus):
            connect(f"{ws_url}/nope").close()
        r = httpx.get(server.url + "/")
        assert r.status_code == 200 and "opensupp" in r.text
    finally:
        stop_server(server)
    assert '"WEBSOCKET /_test/echo" 101' in server.log_text()


@pytest.mark.slow
def test_the_test_routes_are_not_there_by_default(live):
    ws_url = live.url.replace("http://", "ws://")
    with pytest.raises(InvalidStatus):
        connect(f"{ws_url}/_test/echo").close()
    assert httpx.get(live.url + "/_test/form").status_code == 404


def test_a_secret_key_that_cannot_be_kept_stops_the_start_with_what_to_do(database_url, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RuntimeError, match="set OPENSUPP_SECRET_KEY, or make OPENSUPP_DATA_DIR writable"):
        create_app(Settings(database_url=database_url, data_dir=tmp_path / "a-file"))
    out = opensupp("serve", env={**os.environ, "OPENSUPP_DATABASE_URL": database_url,
                                 "OPENSUPP_DATA_DIR": str(tmp_path / "a-file")}, check=False)
    assert out.returncode == 1
    assert "Error: cannot keep a generated secret key in" in out.stderr
    assert "Traceback" not in out.stderr
