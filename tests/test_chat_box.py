"""The chat code on a host page, in a real browser (Debian's Chromium, driven by Playwright).

The host pages are served by the test itself from another origin (``www.shop.test`` on a
second local port; Chromium resolves ``*.shop.test`` and ``opensupp.test`` to 127.0.0.1 and
nothing else), with the guide's snippet verbatim but for the host, and with the variants
real sites use (CHAT-FACTS.md 1.1). The box is opensupp's page in an iframe; the tests reach
into it as a visitor would (clicks, keys) and read its state through the frame.

The box's server connection (docs/chat-protocol.md) lands with the chat transport; until then
these tests cover everything up to it, and the one step that needs the server's visitor
token (the cookie) is driven by posting the box's own "visitor" message from the box frame.

The README's picture, ``docs/images/chat-box.png``, is this file's screenshot: written when
missing, or again with OPENSUPP_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import cli_key, free_port, start_server, stop_server
from opensupp.migrate import migrate

CHROMIUM = Path(os.environ.get("OPENSUPP_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "chat-box.png"
GUIDE_SNIPPET = (  # shared/seed/rest-api-guide.txt, verbatim but for the host and the key
    '<script type="text/javascript"> var _smartsupp = _smartsupp || {}; _smartsupp.key = "YOUR_ACCOUNT_KEY"; '
    "window.smartsupp||(function(d) { var s,c,o=smartsupp=function(){ o._.push(arguments)};o._=[]; "
    "s=d.getElementsByTagName('script')[0];c=d.createElement('script'); c.type='text/javascript';c.charset='utf-8';"
    "c.async=true; c.src='//www.smartsuppchat.com/loader.js';s.parentNode.insertBefore(c,s); })(document); </script>"
)
LOADER_BUDGET = 10 * 1024
BEFORE_LAUNCHER_BUDGET = 80 * 1024
# Resolves once the document's fonts are loaded and two animation frames have begun: the
# first begins the frame that paints what the DOM says now, the second begins only after
# that one was handed to the compositor.
PAINTED = """() => document.fonts.ready.then(() => new Promise(done =>
    requestAnimationFrame(() => requestAnimationFrame(() => done(true)))))"""


# --------------------------------------------------------------------------- the host site


class HostSite:
    """A tiny web server for the host pages: ``pages[path] = html``."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.pages.get(urlsplit(self.path).path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "www.shop.test") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def page_html(head: str, body: str = "<h1>A shop</h1><p>Products.</p>") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Shop</title>{head}</head>"
            f"<body>{body}</body></html>")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("OPENSUPP_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; OPENSUPP_REQUIRE_BROWSER=1 requires it", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        rules = ("MAP *.shop.test 127.0.0.1, MAP shop.test 127.0.0.1, MAP opensupp.test 127.0.0.1, "
                 "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", f"--host-resolver-rules={rules}"])
        try:
            yield browser
        finally:
            browser.close()


class Live:
    def __init__(self, url: str, key: str, host: HostSite) -> None:
        self.url = url
        self.key = key
        self.host = host
        self.authority = urlsplit(url).netloc

    def snippet(self, key: str | None = None) -> str:
        return GUIDE_SNIPPET.replace("www.smartsuppchat.com", self.authority).replace("YOUR_ACCOUNT_KEY",
                                                                                      key or self.key)


class OnlineAgent:
    """An agent of the account connected the whole time (the box is online only while one is):
    a real agent connection, which pings within the server's idle timeout and reads what it gets."""

    def __init__(self, url: str, token: str) -> None:
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(connect(url.replace("http", "ws", 1) + "/chat/ws/agent"))
        self.ws.send(json.dumps({"type": "agent.connect", "ref": "1", "token": token, "status": "online"}))
        hello = json.loads(self.ws.recv(timeout=10))
        assert hello["type"] == "ack", hello
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._keep, daemon=True)
        self.thread.start()

    def _keep(self) -> None:
        last_ping = time.monotonic()
        while not self.stopped.is_set():
            try:
                self.ws.recv(timeout=1)
            except TimeoutError:
                pass
            except Exception:
                return
            if time.monotonic() - last_ping > 20:
                self.ws.send(json.dumps({"type": "ping"}))
                last_ping = time.monotonic()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.stack.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    """One server on SQLite (the box reads one account), an account with an agent online (the
    box is online, as a shop's box is while someone answers), and the host site."""
    from opensupp.chat.protocol import agent_token

    directory = tmp_path_factory.mktemp("chat-box")
    url = f"sqlite:///{directory / 'opensupp.db'}"
    migrate(url)
    secret = "chat-box-test-" + "k" * 40
    server = start_server(url, directory, env={"OPENSUPP_DATA_DIR": str(directory), "OPENSUPP_SECRET_KEY": secret})
    host = HostSite()
    agent = None
    try:
        api = httpx.Client(base_url=server.url,
                           headers={"apiKey": cli_key({**os.environ, "OPENSUPP_DATABASE_URL": url})})
        r = api.post("/accounts/create", json={"title": "Acme Shop", "lang": "en"})
        assert r.status_code == 200, r.text
        account = r.json()
        r = api.post(f"/accounts/{account['id']}/users/create", json={
            "email": "anna@acme.example", "password": "secret-pass", "fullname": "Anna Agent", "nickname": "Anna"})
        assert r.status_code == 200, r.text
        agent = OnlineAgent(server.url, agent_token(secret, int(account["id"]), int(r.json()["id"])))
        yield Live(server.url, account["accountKey"], host)
    finally:
        if agent is not None:
            agent.close()
        host.close()
        stop_server(server)


#: the visits open now (``pump_browsers``)
OPEN_VISITS: list[Visit] = []


def pump_browsers() -> None:
    """Let Playwright handle what the open pages asked meanwhile. Every request of a visit goes
    through ``Visit._route``, a handler in this (sync API) thread, which Playwright runs only
    while the test is inside one of its calls: a test that waits on something else (an agent's
    socket) must pump, or a request the box sends meanwhile waits, unsent, until it stops."""
    for visit in list(OPEN_VISITS):
        visit.page.wait_for_timeout(1)


class Visit:
    """A browser context on the host site: the page, what it asked for, its errors and warnings."""

    def __init__(self, browser: Any, live: Live, viewport: dict[str, int] | None = None) -> None:
        OPEN_VISITS.append(self)
        self.live = live
        self.context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
        self.requests: list[str] = []
        self.elsewhere: list[str] = []
        self.responses: list[Any] = []
        self.context.route("**/*", self._route)
        self.context.on("response", lambda response: self.responses.append(response))
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        host = urlsplit(url).hostname or ""
        if url.startswith("https://opensupp.test/"):  # the https snippet: opensupp behind "TLS"
            response = route.fetch(url=self.live.url + url[len("https://opensupp.test"):])
            route.fulfill(response=response)
        elif host == "127.0.0.1" or host.endswith("shop.test") or url.startswith(("data:", "about:")):
            route.continue_()
        else:  # recorded, and never sent
            self.elsewhere.append(url)
            route.abort()

    def _console(self, message: Any) -> None:
        if message.type == "warning":
            self.warnings.append(message.text)

    def open(self, head: str, body: str = "<h1>A shop</h1>", path: str = "/", host: str = "www.shop.test") -> None:
        self.live.host.pages[path] = page_html(head, body)
        self.page.goto(self.live.host.url(path, host))

    def box(self, timeout: float = 15) -> Any:
        """The box's frame, once its launcher is there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.page.frames:
                if "/chat/box?" in frame.url:
                    frame.locator("#launcher, #pane").first.wait_for(state="attached", timeout=timeout * 1000)
                    frame.wait_for_function("() => window.opensuppBox && window.opensuppBox.state",
                                            timeout=timeout * 1000)
                    # the loader's "init" (the host page's address in it) is its answer to the box's
                    # "ready": the host has shown the frame (until then it is transparent, and clicks
                    # pass through it)
                    frame.wait_for_function("() => window.opensuppBox.state.page.url !== ''", timeout=timeout * 1000)
                    return frame
            self.page.wait_for_timeout(50)
        raise AssertionError(f"no chat box frame; frames: {[f.url for f in self.page.frames]}")

    def painted(self, box: Any, host: bool = True) -> None:
        """Wait until the screen shows what the DOM says. The box's frame is another site's, so
        Chromium renders it in a process of its own and composites its pictures into the host
        page's: after the host resized the frame for the open box, a screenshot could still get
        the frame's earlier picture (the CI failure's 9,334 bytes: the open box's corner of the
        launcher's size, on an otherwise blank page). So the box paints first, then the host page
        (``host``: not on a host page whose scripts are broken, where evaluate is too)."""
        box.evaluate(PAINTED)
        if host:
            self.page.evaluate(PAINTED)

    def frame_box(self, box: Any) -> dict[str, float]:
        """Where the box's iframe is on the host page (its host element is a closed shadow root)."""
        rect = box.frame_element().bounding_box()
        assert rect is not None, "the iframe is not rendered"
        return dict(rect)

    def click_launcher(self, box: Any) -> None:
        """A visitor's click where the launcher shows: proves nothing covers or hides it."""
        box.locator("#launcher").wait_for(state="visible")
        self.painted(box, host=False)  # the browser hit-tests the frame by what it last painted
        frame = self.frame_box(box)
        inner = box.locator("#launcher").bounding_box()
        self.page.mouse.click(inner["x"] + inner["width"] / 2, inner["y"] + inner["height"] / 2)
        box.locator("#pane").wait_for(state="visible")
        assert frame["width"] > 0
        self.frame_is(box, opened=True)

    def frame_is(self, box: Any, opened: bool, timeout: float = 10) -> dict[str, float]:
        """Waits until the host page has sized the box's iframe for the open pane (wider than 100 px)
        or for the launcher: the box asks in a message the host page handles a moment later, and
        writes the open state's cookie in the same step."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.frame_box(box)
            if (frame["width"] > 100) == opened:
                return frame
            assert time.monotonic() < deadline, f"the frame is still {frame} after {timeout} s (opened: {opened})"
            time.sleep(0.02)

    def state(self, box: Any, expression: str) -> Any:
        return box.evaluate(f"() => {{ const s = window.opensuppBox.state; return {expression}; }}")

    def close(self) -> None:
        if self in OPEN_VISITS:
            OPEN_VISITS.remove(self)
        self.context.close()

    def opensupp_responses(self) -> list[Any]:
        return [r for r in self.responses if r.url.startswith(self.live.url)]


@pytest.fixture
def visit(browser, live) -> Iterator[Visit]:
    v = Visit(browser, live)
    try:
        yield v
    finally:
        v.close()
    assert v.elsewhere == [], f"requests to other hosts: {v.elsewhere}"
    assert v.errors == [], f"errors thrown into the host page: {v.errors}"


def _update_screenshot() -> bool:
    return not SCREENSHOT.exists() or os.environ.get("OPENSUPP_UPDATE_SCREENSHOTS") == "1"


def _pixels(context: Any, png: bytes, points: list[tuple[float, float]]) -> list[list[int]]:
    """The RGB colours at ``points`` (x, y) of a PNG picture, decoded by the browser (in a page
    of its own: there is no image library here)."""
    page = context.new_page()
    try:
        return list(page.evaluate("""async ([src, points]) => {
            const img = new Image(); img.src = src; await img.decode();
            const canvas = document.createElement('canvas'); canvas.width = img.width; canvas.height = img.height;
            const g = canvas.getContext('2d'); g.drawImage(img, 0, 0);
            return points.map(([x, y]) =>
                Array.from(g.getImageData(Math.floor(x), Math.floor(y), 1, 1).data).slice(0, 3));
        }""", ["data:image/png;base64," + base64.b64encode(png).decode(), points]))
    finally:
        page.close()


def _rgb(css: str) -> list[int]:
    return [int(c) for c in css[css.index("(") + 1:css.index(")")].split(",")[:3]]


# --------------------------------------------------------------------------- the guide's snippet


def test_the_guides_snippet_shows_a_launcher_within_the_budgets(visit, live, tmp_path):
    started = time.monotonic()
    visit.open(live.snippet())
    box = visit.box()
    box.locator("#launcher").wait_for(state="visible")
    shown_after = time.monotonic() - started
    before_launcher = [r for r in visit.opensupp_responses()]

    # budgets: loader.js, and everything from opensupp before the launcher shows, gzipped
    sizes = {}
    for response in before_launcher:
        try:
            body = response.body()
        except Exception:  # a redirect or an aborted request has no body
            continue
        sizes[response.url] = len(gzip.compress(body, 9))
    loader = [size for url, size in sizes.items() if urlsplit(url).path == "/loader.js"]
    assert loader and loader[0] <= LOADER_BUDGET
    assert sum(sizes.values()) <= BEFORE_LAUNCHER_BUDGET, sizes
    assert shown_after < 10

    # the host page: one new global, the real smartsupp function; the box is a framed page of opensupp's
    globals_added = visit.page.evaluate("""() => {
        const frame = document.createElement('iframe'); document.body.appendChild(frame);
        const fresh = new Set(Object.getOwnPropertyNames(frame.contentWindow)); frame.remove();
        return Object.getOwnPropertyNames(window).filter(n => !fresh.has(n)); }""")
    assert set(globals_added) == {"_smartsupp", "smartsupp"}
    assert visit.page.evaluate("() => typeof smartsupp === 'function' && smartsupp._.length === 0")
    assert box.url.startswith(live.url + "/chat/box?key=" + live.key)
    assert box.evaluate("() => document.documentElement.className").startswith("mode-embed")

    # a click where the launcher shows opens the box; the keyboard closes it again
    visit.click_launcher(box)
    frame = visit.frame_box(box)
    assert frame["width"] >= 300 and frame["height"] >= 400
    assert box.evaluate("() => document.activeElement.id") == "input"
    box.locator("#input").press("Escape")
    box.locator("#launcher").wait_for(state="visible")
    assert visit.frame_is(box, opened=False)["width"] < 100
    assert box.evaluate("() => document.activeElement.id") == "launcher"

    # the README's picture: the box open on the host page, a question being typed
    visit.page.evaluate("() => smartsupp('chat:open')")
    box.locator("#pane").wait_for(state="visible")
    box.locator("#input").fill("Hello! Do you ship to Prague?")
    visit.painted(box)
    picture = SCREENSHOT if _update_screenshot() else tmp_path / SCREENSHOT.name
    picture.parent.mkdir(parents=True, exist_ok=True)
    visit.page.screenshot(path=str(picture))
    assert picture.stat().st_size > 10_000
    # it shows the open box, whole: the far end of its header and its send button, at the box's
    # open size, in the account's colour (not the blank page of a frame not painted yet)
    head, send = box.locator(".head").bounding_box(), box.locator("#send").bounding_box()
    points = [(head["x"] + head["width"] * 0.75, head["y"] + head["height"] - 4),
              (send["x"] + send["width"] / 2, send["y"] + send["height"] * 0.2)]
    colour = _rgb(box.evaluate("() => getComputedStyle(document.querySelector('.head')).backgroundColor"))
    shown = _pixels(visit.context, picture.read_bytes(), points)
    near = [max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) <= 8 for pixel in shown]
    assert all(near), (colour, points, shown)


# --------------------------------------------------------------------------- snippet variants (CHAT-FACTS.md 1.1)


def variants(live: Live) -> dict[str, str]:
    a, key = live.authority, live.key
    stub = ("window.smartsupp||(function(d){var s,c,o=smartsupp=function(){ o._.push(arguments)};o._=[];"
            "s=d.getElementsByTagName('script')[0];c=d.createElement('script');c.type='text/javascript';"
            "c.charset='utf-8';c.async=true;c.src='SRC';s.parentNode.insertBefore(c,s);})(document);")
    return {
        "guide, protocol-relative, no ?": live.snippet(),
        "docs, https with ?": ("<script>var _smartsupp = _smartsupp || {}; _smartsupp.key = '" + key + "';"
                               + stub.replace("SRC", "https://opensupp.test/loader.js?") + "</script>"),
        "http with ?": ("<script>var _smartsupp = _smartsupp || {}; _smartsupp.key = '" + key + "';"
                        + stub.replace("SRC", f"http://{a}/loader.js?") + "</script>"),
        "no stub": (f"<script>var _smartsupp = _smartsupp || {{}}; _smartsupp.key = '{key}';</script>"
                    f"<script src='//{a}/loader.js' async></script>"),
        "_smartsupp = {_: []}": (f"<script>window._smartsupp = {{_: []}}; _smartsupp.key = '{key}';"
                                 "_smartsupp._.push(['name', 'Queued Name']);</script>"
                                 f"<script src='https://opensupp.test/loader.js'></script>"),
        "delayed (setTimeout 1500)": ("<script>window.setTimeout(function(){ var _smartsupp = window._smartsupp = "
                                      f"window._smartsupp || {{}}; _smartsupp.key = '{key}';"
                                      + stub.replace("SRC", f"//{a}/loader.js") + "}, 1500);</script>"),
    }


@pytest.mark.parametrize("variant", ["guide, protocol-relative, no ?", "docs, https with ?", "http with ?", "no stub",
                                     "_smartsupp = {_: []}", "delayed (setTimeout 1500)"])
def test_every_snippet_variant_puts_a_working_box_on_the_page(visit, live, variant):
    visit.open(variants(live)[variant])
    box = visit.box()
    visit.click_launcher(box)
    assert visit.page.evaluate("() => typeof smartsupp === 'function'")
    if variant == "_smartsupp = {_: []}":
        assert visit.state(box, "s.visitor.name") == "Queued Name"
    if variant == "docs, https with ?":
        assert box.url.startswith("https://opensupp.test/chat/box?")


# --------------------------------------------------------------------------- the queue, options, commands


def test_the_queue_is_drained_in_order_then_the_stub_replaced(visit, live):
    queued = """<script>
      smartsupp('name', 'First'); smartsupp('name', 'Second');
      smartsupp('chat:hide'); smartsupp('chat:show');
      smartsupp('language', 'cs'); smartsupp('language', 'en'); smartsupp('language', 'cs');
      smartsupp('theme:color', '#000000'); smartsupp('theme:color', '#ffd600');
      smartsupp('chat:open'); smartsupp('chat:close'); smartsupp('chat:open');
      window.stub = smartsupp;
    </script>"""
    visit.open(live.snippet() + queued)
    box = visit.box()
    box.locator("#pane").wait_for(state="visible")  # the last open won
    assert visit.state(box, "s.visitor.name") == "Second"
    assert box.evaluate("() => document.documentElement.lang") == "cs"
    assert box.locator("#input").get_attribute("placeholder") == "Napište zprávu…"
    color = box.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--c').trim()")
    assert color == "#ffd600"
    # yellow is light: the text on it is black (WCAG AA contrast)
    assert box.evaluate("() => getComputedStyle(document.querySelector('.head')).color") == "rgb(0, 0, 0)"
    assert visit.page.evaluate("() => window.stub !== smartsupp && smartsupp._.length === 0")
    # the real function now; a call after the load takes effect at once
    visit.page.evaluate("() => smartsupp('chat:close')")
    box.locator("#launcher").wait_for(state="visible")


def test_options_set_after_the_script_tag_count(visit, live):
    after = "<script>_smartsupp.color = '#c62828'; _smartsupp.orientation = 'left'; _smartsupp.offsetX = 30;" \
            " _smartsupp.offsetY = 40; _smartsupp.zIndex = 12345;</script>"
    visit.open(live.snippet() + after)
    box = visit.box()
    box.locator("#launcher").wait_for(state="visible")
    assert box.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--c').trim()") == "#c62828"
    frame = visit.frame_box(box)
    assert frame["x"] == 30 and frame["y"] + frame["height"] == 800 - 40  # left: 30px, bottom: 40px
    assert box.frame_element().evaluate("f => getComputedStyle(f).zIndex") == "12345"
    assert box.evaluate("() => getComputedStyle(document.querySelector('.head')).color") == "rgb(255, 255, 255)"


def test_commands_take_effect_in_the_box(visit, live):
    visit.open(live.snippet())
    box = visit.box()
    page = visit.page
    box.locator("#launcher").wait_for(state="visible")

    page.evaluate("() => smartsupp('chat:open')")
    box.locator("#pane").wait_for(state="visible")
    page.evaluate("() => smartsupp('chat:message', 'I would like to order')")
    box.wait_for_function("() => document.getElementById('input').value === 'I would like to order'")
    page.evaluate("() => smartsupp('chat:close')")
    box.locator("#launcher").wait_for(state="visible")

    page.evaluate("() => smartsupp('chat:hide')")
    page.wait_for_function("() => true")
    box.frame_element().wait_for_element_state("hidden")
    page.evaluate("() => smartsupp('chat:show')")
    box.frame_element().wait_for_element_state("visible")

    page.evaluate("""() => { smartsupp('name', 'Jane Doe'); smartsupp('email', 'jane@example.com');
        smartsupp('phone', '+420 123'); smartsupp('group', 'sales');
        smartsupp('variables', {userId: 1234, vip: true, plan: {label: 'Plan', value: 'gold'}}); }""")
    box.wait_for_function("() => window.opensuppBox.state.visitor.variables !== null")  # the last one sent
    visitor = visit.state(box, "s.visitor")
    assert visitor["name"] == "Jane Doe" and visitor["email"] == "jane@example.com" and visitor["phone"] == "+420 123"
    assert visitor["variables"] == {"userId": 1234, "vip": True, "plan": {"label": "Plan", "value": "gold"}}

    page.evaluate("() => smartsupp('language', 'cs')")
    box.wait_for_function("() => document.documentElement.lang === 'cs'")
    assert box.locator("#launcher .sr-only").text_content() == "Otevřít chat"
    page.evaluate("() => smartsupp('language', 'de')")  # no texts of its own: English
    box.wait_for_function("() => document.documentElement.lang === 'de'")
    assert box.locator("#launcher .sr-only").text_content() == "Open chat"

    page.evaluate("() => smartsupp('theme:color', '#00ff00')")
    box.wait_for_function("() => getComputedStyle(document.documentElement).getPropertyValue('--c').trim()"
                          " === '#00ff00'")
    page.evaluate("() => smartsupp('theme:color', 'red; background: url(//evil.example/)')")  # not a colour: ignored
    assert box.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--c').trim()") == "#00ff00"

    # events: the current ones register silently; messenger_close fires when the box closes
    page.evaluate("""() => { window.closes = 0; smartsupp('on', 'messenger_close', () => { window.closes++; });
        smartsupp('on', 'message_sent', () => {}); smartsupp('on', 'message_received', () => {}); }""")
    box.locator("#launcher").click()
    box.locator("#close").click()
    page.wait_for_function("() => window.closes === 1")
    # the current but unsupported ones: accepted silently
    page.evaluate("() => { smartsupp('analyticsConsent', true); smartsupp('recording:disable', true); }")
    assert visit.warnings == []


def test_hide_widget_and_hide_mobile_widget(browser, live):
    for viewport, options, visible in (
        ({"width": 1280, "height": 800}, "_smartsupp.hideWidget = true;", False),
        ({"width": 390, "height": 800}, "_smartsupp.hideMobileWidget = true;", False),
        ({"width": 1280, "height": 800}, "_smartsupp.hideMobileWidget = true;", True),
    ):
        v = Visit(browser, live, viewport)
        try:
            v.open(live.snippet() + f"<script>{options}</script>")
            box = v.box()
            box.wait_for_function("() => !document.getElementById('launcher').hidden")
            state = "visible" if visible else "hidden"
            box.frame_element().wait_for_element_state(state)
            if not visible and "hideWidget" in options:  # chat:open still opens it
                v.page.evaluate("() => smartsupp('chat:open')")
                box.frame_element().wait_for_element_state("visible")
            assert v.errors == [] and v.elsewhere == []
        finally:
            v.close()


def test_mobile_layout_fills_the_screen_when_open(browser, live):
    v = Visit(browser, live, {"width": 390, "height": 700})
    try:
        v.open(live.snippet())
        box = v.box()
        v.click_launcher(box)
        frame = v.frame_box(box)
        assert frame == {"x": 0, "y": 0, "width": 390, "height": 700}
        assert "mobile" in box.evaluate("() => document.documentElement.className")
        assert v.errors == []
    finally:
        v.close()


def test_legacy_options_and_commands_give_one_console_warning(visit, live):
    legacy = """<script>_smartsupp.alignY = 'side'; _smartsupp.soundMuted = true; _smartsupp.sendEmailTanscript = true;
      _smartsupp.cookieSecure = true; smartsupp('chat:avatar', 'https://example.com/a.png');
      smartsupp('on', 'agent.join', function () {}); smartsupp('theme:options', {widgetWidth: 10});</script>"""
    visit.open(live.snippet() + legacy)
    box = visit.box()
    visit.click_launcher(box)
    visit.page.evaluate("() => { smartsupp('banner:set', 'bubble'); smartsupp('no-such-command'); }")
    visit.page.wait_for_timeout(200)
    assert len(visit.warnings) == 1, visit.warnings
    assert "legacy" in visit.warnings[0]


# --------------------------------------------------------------------------- a hostile host page


def test_a_hostile_host_page_still_gets_a_working_launcher(visit, live):
    hostile = """<style>
      * { display: none !important; } html, body, h1 { display: block !important; }
      div, iframe, opensupp-chat { display: none !important; width: 0 !important; height: 0 !important;
        opacity: 0 !important; visibility: hidden !important; transform: scale(0) !important; }
      iframe { position: absolute !important; left: -9999px !important; pointer-events: none !important; }
      body * { filter: blur(10px) !important; }
    </style>
    <script>
      for (const name of ['forEach', 'map', 'filter', 'indexOf', 'slice', 'splice', 'join', 'concat', 'includes',
                          'some', 'every', 'reduce', 'find', 'shift', 'unshift', 'pop']) {
        Array.prototype[name] = function () { throw new Error('the host broke Array.prototype.' + name); };
      }
      Object.prototype.hostile = 1;
      window.JSON.stringify = function () { throw new Error('the host broke JSON.stringify'); };
    </script>"""
    body = "<h1 id='closer' onclick=\"smartsupp('chat:close')\">A hostile shop</h1><div><div>content</div></div>"
    visit.open(hostile + live.snippet(), body=body)
    box = visit.box()
    visit.click_launcher(box)
    box.locator("#input").fill("still works")
    # (the page's own scripts are broken for Playwright's evaluate too: the host page's element calls it)
    visit.page.locator("#closer").click()
    box.locator("#launcher").wait_for(state="visible")


def test_nothing_the_box_does_throws_into_the_host_page(visit, live):
    visit.open(live.snippet())
    box = visit.box()
    page = visit.page
    page.evaluate("""() => {
        smartsupp(); smartsupp(null); smartsupp(42); smartsupp({}); smartsupp('on'); smartsupp('on', 'message_sent', 5);
        smartsupp('variables', null); smartsupp('variables', 'x');
        smartsupp('name', {toString() { throw new Error('x'); }});
        smartsupp('on', 'messenger_close', () => { throw new Error('a host handler that throws'); });
        smartsupp._.push(['chat:open']);
        window.postMessage({opensupp: 1, type: 'open', open: false}, '*');  // not from the box: ignored
    }""")
    box.locator("#pane").wait_for(state="visible")
    visit.page.wait_for_timeout(100)
    assert box.locator("#pane").is_visible()  # the forged message did nothing
    page.evaluate("() => smartsupp('chat:close')")  # the throwing handler runs, and is contained
    box.locator("#launcher").wait_for(state="visible")
    # the box accepts messages only from its host window with the load's nonce
    box.evaluate("() => window.postMessage({opensupp: 1, nonce: 'x'.repeat(32), type: 'open', open: true}, '*')")
    visit.page.wait_for_timeout(100)
    assert box.locator("#launcher").is_visible()


def test_what_a_visitor_writes_is_shown_as_text(visit, live):
    hostile_name = "<img src=x onerror=\"window.parent.pwned=1\"><script>window.pwned=1</script>"
    as_js = json.dumps(hostile_name).replace("</", "<\\/")  # a host page's own escaping inside <script>
    visit.open(live.snippet() + f"<script>_smartsupp.requireLogin = true; smartsupp('name', {as_js});</script>")
    box = visit.box()
    visit.click_launcher(box)
    assert box.locator("#login").is_visible()
    assert box.locator("#login-name").input_value() == hostile_name  # the host's smartsupp('name'), as text
    box.locator("#login-email").fill("jane@example.com")
    box.locator("#login-name").fill(hostile_name)
    box.locator("#login button[type=submit]").click()
    box.locator("#compose").wait_for(state="visible")
    assert visit.state(box, "s.visitor.name") == hostile_name
    box.locator("#input").fill("<script>window.pwned=2</script><b>bold?</b>")
    box.locator("#input").press("Enter")
    bubble = box.locator(".msg.visitor").last
    bubble.wait_for()
    assert "<script>window.pwned=2</script><b>bold?</b>" in bubble.text_content()
    assert bubble.locator("b, script, img").count() == 0
    assert box.evaluate("() => window.pwned") is None and visit.page.evaluate("() => window.pwned") is None


# --------------------------------------------------------------------------- the visitor cookie


@pytest.mark.parametrize("domain", [None, ".shop.test"])
def test_the_visitor_cookie_respects_cookie_domain(visit, live, domain):
    options = f"<script>_smartsupp.cookieDomain = '{domain}';</script>" if domain else ""
    visit.open(live.snippet() + options)
    box = visit.box()
    box.wait_for_function("() => window.opensuppBox.state.connected", timeout=15_000)
    # the server answered visitor.connect with the visitor's signed token: the loader keeps it
    visit.page.wait_for_function("() => typeof smartsupp.vid === 'string' && smartsupp.vid.length === 22")
    vid = visit.page.evaluate("() => smartsupp.vid")
    cookies = [c for c in visit.context.cookies() if c["name"] == "ssupp.vid"]
    assert len(cookies) == 1
    cookie = cookies[0]
    token = cookie["value"]
    assert len(token) > len(vid)  # the vid, signed
    assert cookie["domain"] == (domain or "www.shop.test")
    assert cookie["path"] == "/" and cookie["sameSite"] == "Lax" and not cookie["secure"]
    assert 170 * 86400 < cookie["expires"] - time.time() < 190 * 86400
    # what only the box may post: one with the wrong nonce, or from the host page, is ignored
    post = """([token, nonce]) => window.parent.postMessage({opensupp: 1, nonce, type: 'visitor', token,
        vid: 'V'.repeat(22)}, '*')"""
    box.evaluate(post, ["forged.token", "0" * 32])
    visit.page.evaluate("() => window.postMessage({opensupp: 1, type: 'visitor', token: 'forged'}, '*')")
    visit.page.wait_for_timeout(300)
    assert [c["value"] for c in visit.context.cookies() if c["name"] == "ssupp.vid"] == [token]
    assert visit.page.evaluate("() => smartsupp.vid") == vid
    # the next page of the site gives the box the token (through the loader, to opensupp's frame
    # only): the same visitor
    other = "other.shop.test" if domain else "www.shop.test"
    visit.open(live.snippet() + options, path="/cart", host=other)
    box = visit.box()
    box.wait_for_function(f"() => window.opensuppBox.state.token === {json.dumps(token)}")
    box.wait_for_function("() => window.opensuppBox.state.connected", timeout=15_000)
    visit.page.wait_for_function(f"() => smartsupp.vid === {json.dumps(vid)}")
    # logout forgets it: the box starts a new, anonymous visitor, with a token of its own
    visit.page.evaluate("() => smartsupp('logout')")
    visit.page.wait_for_function(f"() => typeof smartsupp.vid === 'string' && smartsupp.vid.length === 22"
                                 f" && smartsupp.vid !== {json.dumps(vid)}")
    fresh = [c["value"] for c in visit.context.cookies() if c["name"] == "ssupp.vid"]
    assert len(fresh) == 1 and fresh[0] != token


# --------------------------------------------------------------------------- the preview page


def test_the_preview_page_and_an_unknown_key(visit, live):
    visit.page.goto(f"{live.url}/widget?accountKey={live.key}")
    visit.page.locator("#pane").wait_for(state="visible")
    # the account's title until the box has connected, then who answers: the agent online
    visit.page.wait_for_function("() => document.getElementById('agent-name').textContent === 'Anna'")
    assert visit.page.locator("#launcher").is_hidden()
    response = visit.page.goto(f"{live.url}/widget/{'0' * 40}")
    assert response.status == 404
    assert visit.page.get_by_role("heading").first.text_content() == "This chat is not available"


# --------------------------------------------------------------------------- contrast, privacy notice, page views


def _contrast(rgb_a: str, rgb_b: str) -> float:
    def luminance(rgb: str) -> float:
        channels = [int(c) / 255 for c in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3]]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    a, b = sorted((luminance(rgb_a), luminance(rgb_b)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_any_account_colour_keeps_text_at_wcag_aa_contrast(visit, live):
    visit.open(live.snippet() + "<script>smartsupp('chat:open');</script>")
    box = visit.box()
    box.locator("#pane").wait_for(state="visible")
    for color in ("#ffd600", "#777777", "#00ff00", "#1565c0", "#ff0000", "#000000", "#ffffff", "#808080", "#f80"):
        visit.page.evaluate(f"() => smartsupp('theme:color', '{color}')")
        expected = color if len(color) == 7 else "#" + "".join(ch * 2 for ch in color[1:])
        box.wait_for_function(f"() => getComputedStyle(document.documentElement).getPropertyValue('--c').trim()"
                              f" === '{expected}'")
        for selector in (".head", "#send", "#launcher"):
            colors = box.evaluate(f"""() => {{ const s = getComputedStyle(document.querySelector('{selector}'));
                return [s.color, s.backgroundColor]; }}""")
            assert _contrast(*colors) >= 4.5, (color, selector, colors)


def test_the_privacy_notice_and_its_required_consent(visit, live):
    options = ("<script>_smartsupp.privacyNoticeEnabled = true; _smartsupp.privacyNoticeCheckRequired = true;"
               " _smartsupp.privacyNoticeUrl = 'https://www.shop.test/privacy';</script>")
    visit.open(live.snippet() + options)
    box = visit.box()
    visit.click_launcher(box)
    notice = box.locator("#compose-privacy")
    notice.wait_for(state="visible")
    assert notice.get_by_role("link").get_attribute("href") == "https://www.shop.test/privacy"
    box.locator("#input").fill("Hello")
    box.locator("#input").press("Enter")
    assert box.locator(".msg.visitor").count() == 0  # not without the consent
    assert box.evaluate("() => document.activeElement.name") == "agree"
    notice.get_by_role("checkbox").check()
    box.locator("#input").press("Enter")
    box.locator(".msg.visitor").wait_for()


def test_a_single_page_apps_navigation_is_a_page_view(visit, live):
    visit.open(live.snippet())
    box = visit.box()
    box.wait_for_function("() => window.opensuppBox.state.page.url.endsWith('/')")
    visit.page.evaluate("() => history.pushState({}, '', '/products/42')")
    box.wait_for_function("() => window.opensuppBox.state.page.url.endsWith('/products/42')", timeout=5000)


def test_a_host_that_re_renders_its_body_gets_the_box_back_with_its_details(visit, live):
    visit.open(live.snippet() + "<script>smartsupp('name', 'Kept Name'); smartsupp('theme:color', '#6a1b9a');</script>")
    first = visit.box()
    first.wait_for_function("() => window.opensuppBox.state.visitor.name === 'Kept Name'")
    visit.page.evaluate("() => { document.body.innerHTML = '<h1>Re-rendered</h1>'; }")
    deadline = time.monotonic() + 10
    while first in visit.page.frames and time.monotonic() < deadline:
        visit.page.wait_for_timeout(50)
    box = visit.box()
    assert box is not first
    box.wait_for_function("() => window.opensuppBox.state.visitor.name === 'Kept Name'")
    assert box.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--c').trim()") == "#6a1b9a"
    visit.click_launcher(box)


def test_an_open_box_stays_open_on_the_next_page(visit, live):
    visit.open(live.snippet())
    box = visit.box()
    visit.click_launcher(box)
    visit.open(live.snippet(), path="/next")
    box = visit.box()
    box.locator("#pane").wait_for(state="visible")
    box.locator("#close").click()
    visit.frame_is(box, opened=False)  # the host page has handled the close (and its cookie)
    visit.open(live.snippet(), path="/third")
    box = visit.box()
    box.locator("#launcher").wait_for(state="visible")
    assert box.locator("#pane").is_hidden()


def test_the_box_is_usable_by_keyboard_and_screen_reader(visit, live):
    visit.open(live.snippet())
    box = visit.box()
    launcher = box.get_by_role("button", name="Open chat")
    launcher.wait_for()
    assert launcher.get_attribute("aria-expanded") == "false"
    launcher.focus()
    launcher.press("Enter")  # a button: Enter opens it
    dialog = box.get_by_role("dialog", name="Anna")  # named after who answers: the agent online
    dialog.wait_for()
    assert box.get_by_role("log", name="Messages").get_attribute("aria-live") == "polite"
    message = box.get_by_role("textbox", name="Your message")
    assert box.evaluate("() => document.activeElement.id") == message.get_attribute("id")
    # the order of Tab: the minimize button, the messages, the message, send
    box.get_by_role("button", name="Minimize chat").focus()
    order = []
    for _ in range(3):
        visit.page.keyboard.press("Tab")
        order.append(box.evaluate("() => document.activeElement.id"))
    assert order == ["log", "input", "send"]
    assert box.get_by_role("button", name="Send").is_visible()
    visit.page.keyboard.press("Escape")
    box.get_by_role("button", name="Open chat").wait_for()
    assert box.evaluate("() => document.activeElement.id") == "launcher"
