"""The chat box talking to the chat transport (docs/chat-protocol.md) in a real browser: the
visitor writes, an agent connection reads and answers, the visitor sees it; a reload keeps the
conversation (and fires no event twice); a socket cut mid-conversation loses and doubles
nothing; a closed chat is rated; an offline account shows the offline form; two browser
contexts are two visitors; a ``delay_site`` trigger counts from the first page across a page
change. Over the WebSocket and over the long-poll fallback (the box's WebSocket removed, as a
network that blocks it does).

The README's conversation picture, ``docs/images/chat-box-conversation.png``, is this file's
screenshot: written when missing, or again with OPENSUPP_UPDATE_SCREENSHOTS=1.

The server is the real one (create_app under uvicorn, on SQLite): the transport over the
database's chat service, an agent who is a user the partner API made, and what was stored read
back through the partner API and the database file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from test_chat_box import SCREENSHOT, HostSite, Live, Visit, page_html, pump_browsers
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Chromium, a skip, or with OPENSUPP_REQUIRE_BROWSER=1 a failure)
from websockets.sync.client import ClientConnection, connect

from conftest import cli_key, free_port
from opensupp.app import create_app
from opensupp.chat import protocol
from opensupp.config import Settings
from opensupp.migrate import migrate

SECRET = "widget-live-test-" + "k" * 40


class Server:
    """opensupp's app under uvicorn in a thread; a partner's account with an agent, Anna."""

    def __init__(self, directory: Path) -> None:
        self.file = directory / "opensupp.db"
        url = f"sqlite:///{self.file}"
        migrate(url)
        self.app = create_app(Settings(database_url=url, data_dir=directory, secret_key=SECRET))
        port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        self.api = httpx.Client(base_url=self.url, timeout=20,
                                headers={"apiKey": cli_key({**os.environ, "OPENSUPP_DATABASE_URL": url})})
        r = self.api.post("/accounts/create", json={"title": "Acme", "lang": "en"})
        assert r.status_code == 200, r.text
        self.account_key = r.json()["accountKey"]
        self.account_id = int(r.json()["id"])
        r = self.api.post(f"/accounts/{self.account_id}/users/create", json={
            "email": "anna@acme.example", "password": "secret-pass", "fullname": "Anna Agent", "nickname": "Anna"})
        assert r.status_code == 200, r.text
        self.agent_id = int(r.json()["id"])

    def query(self, sql: str, *args: Any) -> list[Any]:
        """A read of the server's database file (committed data, as another process sees it)."""
        with contextlib.closing(sqlite3.connect(self.file)) as db:
            return db.execute(sql, args).fetchall()

    def messages(self, conversation_id: int) -> list[dict[str, Any]]:
        r = self.api.get(f"/accounts/{self.account_id}/conversations/{conversation_id}/get")
        assert r.status_code == 200, r.text
        return list(r.json()["messages"])

    def stop(self) -> None:
        self.api.close()
        self.server.should_exit = True
        self.thread.join(timeout=15)


class Socket:
    """A chat socket's client side (docs/chat-protocol.md): ``send`` numbers its refs; ``wait``
    answers the next frame of a kind (with those fields), keeping the frames it skips for a later
    wait, for at most ``timeout`` seconds unless told. ``idle``: called while nothing comes (a
    browser's sync API to pump)."""

    def __init__(self, ws: ClientConnection, who: str, idle: Any = None, timeout: float = 20) -> None:
        self.ws = ws
        self.who = who
        self.idle = idle
        self.timeout = timeout
        self.kept: list[dict[str, Any]] = []
        self.refs = 0

    def send(self, **frame: Any) -> str:
        self.refs += 1
        ref = f"{self.who[0]}{self.refs}"
        self.ws.send(json.dumps({"ref": ref, **frame}))
        return ref

    def wait(self, kind: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        timeout = self.timeout if timeout is None else timeout

        def matches(frame: dict[str, Any]) -> bool:
            return frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())

        for n, frame in enumerate(self.kept):
            if matches(frame):
                return self.kept.pop(n)
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.01, deadline - time.monotonic())
            try:
                frame = json.loads(self.ws.recv(timeout=min(0.05, left) if self.idle else left))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        f"the {self.who} got no {kind} {fields} in {timeout} s; it got {self.kept}") from None
                self.idle()
                continue
            if matches(frame):
                return dict(frame)
            self.kept.append(frame)


class Agent(Socket):
    """An agent connection (docs/chat-protocol.md 7), pumping the browsers while it waits (the box's
    requests pass through this thread's route handler)."""

    def __init__(self, server: Server) -> None:
        self.stack = contextlib.ExitStack()  # websockets 17 wants its connect used as a context manager
        url = server.url.replace("http", "ws") + "/chat/ws/agent"
        super().__init__(self.stack.enter_context(connect(url)), "agent", idle=pump_browsers)
        self.send(type="agent.connect", token=protocol.agent_token(SECRET, server.account_id, server.agent_id))
        assert self.wait("ack")["data"]["agent"]["nickname"] == "Anna"

    def close(self) -> None:
        self.stack.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def site(server: Server) -> Iterator[Live]:
    host = HostSite()
    try:
        yield Live(server.url, server.account_key, host)
    finally:
        host.close()


@pytest.fixture
def agent(server: Server) -> Iterator[Agent]:
    a = Agent(server)
    try:
        yield a
    finally:
        a.close()


EVENTS = ("<script>window.events = []; smartsupp('on', 'message_sent', m => events.push(['sent', m.content.text]));"
          " smartsupp('on', 'message_received', m => events.push(['received', m.content.text]));</script>")
SOCKETS = """(() => { const W = window.WebSocket; if (!W) return; window.sockets = [];
  window.WebSocket = function (u, p) { const s = new W(u, p); window.sockets.push(s); return s; };
  window.WebSocket.prototype = W.prototype; })()"""


def visitor(browser: Any, site: Live, transport: str) -> Visit:
    v = Visit(browser, site)
    # the long-poll: the box's WebSocket gone, as behind a proxy that blocks Upgrade; else a
    # record of the box's sockets, to cut them
    v.context.add_init_script("delete window.WebSocket;" if transport == "poll" else SOCKETS)
    return v


def connected(v: Visit) -> Any:
    """The box's frame once its socket is connected and the host page has the visitor's vid (the
    box tells the loader in a message of its own, handled a moment later)."""
    box = v.box()
    box.wait_for_function("() => window.opensuppBox.state.connected", timeout=15_000)
    v.page.wait_for_function("() => typeof smartsupp.vid === 'string' && smartsupp.vid.length === 22",
                             timeout=15_000)
    return box


@pytest.mark.parametrize("transport", ["ws", "poll"])
def test_a_visitor_and_an_agent_chat_across_reloads_and_a_cut(browser, server, site, agent, transport):
    v = visitor(browser, site, transport)
    try:
        v.open(site.snippet() + EVENTS)
        box = connected(v)
        assert box.evaluate("() => window.opensuppBox.connection.mode()") == transport
        assert box.locator("#status").text_content() == "We are online"
        # the visitor is the server's: its token in the host page's cookie, its vid on smartsupp
        vid = v.page.evaluate("() => smartsupp.vid")
        assert isinstance(vid, str) and len(vid) == 22
        token = next(c["value"] for c in v.context.cookies() if c["name"] == "ssupp.vid")
        assert server.query("SELECT vid FROM visitors WHERE account_id = ?", server.account_id) == [(vid,)]
        assert token

        v.click_launcher(box)
        box.locator("#input").fill("Hello, <b>anyone</b>?")
        box.locator("#input").press("Enter")
        received = agent.wait("chat.message_received")
        conversation = received["conversationId"]
        assert received["message"]["text"] == "Hello, <b>anyone</b>?" and received["message"]["kind"] == "visitor"
        box.wait_for_function("() => !document.querySelector('.msg.pending')")

        agent.send(type="chat.typing", conversationId=conversation, **{"is": True})
        box.locator("#typing").wait_for(state="visible")
        assert box.locator("#typing").text_content() == "Anna is typing…"
        box.locator("#close").click()
        agent.send(type="chat.message", conversationId=conversation, clientId="agent-1",
                   text="<script>x()</script> Yes!")
        box.locator("#badge").wait_for(state="visible")
        assert box.locator("#badge").text_content() == "1"
        assert box.locator(".msg.agent").text_content() == "Anna<script>x()</script> Yes!"
        assert box.locator("#typing").is_hidden()
        v.page.wait_for_function("() => events.length === 2")
        assert v.page.evaluate("() => events") == [["sent", "Hello, <b>anyone</b>?"],
                                                   ["received", "<script>x()</script> Yes!"]]

        # a reload: the same visitor and conversation, the badge still there, no event fired again
        v.page.reload()
        box = connected(v)
        box.wait_for_function("() => document.querySelectorAll('.msg.visitor, .msg.agent').length === 2")
        assert box.locator("#badge").text_content() == "1"
        assert v.page.evaluate("() => smartsupp.vid") == vid
        v.click_launcher(box)
        assert box.locator("#badge").is_hidden()
        agent.wait("chat.contact_read", conversationId=conversation)
        v.page.wait_for_timeout(300)
        assert v.page.evaluate("() => events") == []

        # the socket cut mid-conversation: what the visitor sends meanwhile goes once, what the
        # agent sends meanwhile comes once, in the server's order
        box.locator("#input").fill("sent while cut")
        box.evaluate("""() => { (window.sockets || []).forEach(s => s.close());
            document.getElementById('compose').requestSubmit(); }""")
        for n in range(2):
            agent.send(type="chat.message", conversationId=conversation, clientId=f"agent-cut-{n}", text=f"agent {n}")
        box.wait_for_function("""() => document.querySelectorAll('.msg.agent').length === 3
            && !document.querySelector('.msg.pending')""", timeout=20_000)
        v.page.wait_for_timeout(500)
        shown = box.locator(".msg.visitor, .msg.agent").all_text_contents()
        stored = [m for m in server.messages(conversation) if m["type"] in ("visitor", "agent")]
        assert len(stored) == 5 and [m["text"] for m in stored].count("sent while cut") == 1
        assert [text.replace("You", "", 1).replace("Anna", "", 1) for text in shown] == [m["text"] for m in stored]

        # the agent closes: the visitor rates
        agent.send(type="chat.close", conversationId=conversation)
        box.locator("#rating").wait_for(state="visible")
        box.get_by_label("Great").check()
        box.locator("#rating-text").fill("Quick answer")
        box.locator("#rating button[type=submit]").click()
        rated = agent.wait("chat.rated", conversationId=conversation)
        assert rated["rating"]["value"] == 5
        assert v.errors == [] and v.elsewhere == []
    finally:
        v.close()


def test_two_browser_contexts_are_two_visitors(browser, server, site, agent):
    first, second = visitor(browser, site, "ws"), visitor(browser, site, "ws")
    try:
        first.open(site.snippet() + "<script>smartsupp('chat:open')</script>")
        box = connected(first)
        box.locator("#input").fill("first visitor's secret")
        box.locator("#input").press("Enter")
        agent.wait("chat.message_received")
        second.open(site.snippet() + "<script>smartsupp('chat:open')</script>")
        other = connected(second)
        assert first.page.evaluate("() => smartsupp.vid") != second.page.evaluate("() => smartsupp.vid")
        second.page.wait_for_timeout(500)
        assert other.locator(".msg.visitor, .msg.agent").count() == 0
    finally:
        first.close()
        second.close()


def test_an_offline_account_takes_a_message_in_the_offline_form(browser, server, site):
    r = server.api.post(f"/accounts/{server.account_id}/officehours/update",  # closed (and no agent connected)
                        json={"active": True, "days": [], "timezone": 0, "config": []})
    assert r.status_code == 200, r.text
    v = visitor(browser, site, "ws")
    try:
        v.open(site.snippet() + "<script>_smartsupp.privacyNoticeEnabled = true;</script>")
        box = connected(v)
        v.click_launcher(box)
        form = box.locator("#offline")
        form.wait_for(state="visible")
        assert box.locator("#status").text_content() == "We are offline"
        assert box.locator("#compose").is_hidden()
        assert form.locator(".privacy").is_visible()
        form.locator("button[type=submit]").click()
        assert form.locator(".error").text_content() == "Please fill in this field."
        box.locator("#offline-name").fill("Jane")
        box.locator("#offline-email").fill("jane@example.com")
        box.locator("#offline-text").fill("Please call me back.")
        form.locator("button[type=submit]").click()
        box.get_by_text("Thank you, your message was sent.").wait_for()
        listed = server.api.get(f"/accounts/{server.account_id}/conversations/").json()["records"]
        assert [c["offline"] for c in listed] == [True]
        stored = server.api.get(f"/accounts/{server.account_id}/conversations/{listed[0]['id']}/get").json()
        assert (stored["visitor"]["name"], stored["visitor"]["email"]) == ("Jane", "jane@example.com")
        assert [m["text"] for m in stored["messages"]] == ["Please call me back."]
        assert v.errors == []
    finally:
        v.close()


SEEN = """() => new Promise(ok => {  // when the trigger's message is (or, now, was) in the log; null: not in 10 s
  const seen = () => document.querySelector('.msg.trigger') && (ok(Date.now()), true);
  if (!seen()) { new MutationObserver((_, o) => seen() && o.disconnect()).observe(document.body,
    { childList: true, subtree: true }); }
  setTimeout(() => ok(null), 10000);
})"""


def test_a_delay_site_trigger_counts_from_the_first_page_across_a_page_change(browser, server, site, agent):
    r = server.api.post(f"/accounts/{server.account_id}/triggers/create", json={
        "name": "Two seconds on the site", "event": "onload", "conditions": [{"name": "delay_site", "value": 2}],
        "actions": [{"name": "message", "agent_nick": "Robo", "message": "Can I help you choose?"}]})
    assert r.status_code == 200, r.text
    site.host.pages["/page-2"] = page_html(site.snippet(), "<h1>Page two</h1>")
    v = visitor(browser, site, "ws")
    try:
        opened = time.time()
        v.open(site.snippet(), "<h1>Page one</h1>")
        box = connected(v)
        first = time.time()  # page one's box is connected: the visit has started
        vid = v.page.evaluate("() => smartsupp.vid")
        # the site clock counts from the visit's start, which the server keeps to the millisecond
        # (``start``, as the box connected): the trigger fires once the clock says 2, at start + 2;
        # page two opens before that, about a second after page one
        [(start_ms,)] = server.query("SELECT visit_started_ms FROM visitors WHERE account_id = ? AND vid = ?",
                                     server.account_id, vid)
        start = start_ms / 1000
        time.sleep(max(0.0, start + 1.0 - time.time(), opened + 0.8 - time.time()))
        left = time.time()
        # the precondition: page two opens before the clock says 2, after page one was open a while
        # (how long page one took to load under load is the machine's, not the trigger's, so only
        # its lower bound is kept)
        assert left < start + 2 and left - opened >= 0.8, {"left - start": left - start, "left - opened": left - opened}
        assert box.locator(".msg.trigger").count() == 0  # nothing fired on page one

        v.page.goto(site.host.url("/page-2"))
        box = connected(v)
        second = time.time()  # page two's box is connected (its onload evaluated)
        assert v.page.locator("h1").text_content() == "Page two"
        shown = box.evaluate(SEEN)
        assert shown is not None, "the trigger's message did not show on page two"
        seen = shown / 1000  # the browser's clock is this machine's
        # two seconds from the visit's start, never earlier (and late by no more than its delivery
        # to the box), not two seconds after the second page (it shows about a second after page
        # two's box connected; counted from page two it would take two)
        # (page two's box connecting only after start + 2, under load, is the machine's: the trigger
        # is then due at once, as page two's box connects)
        timing = {"start": seen - start, "page one": seen - first, "page two": seen - second}
        assert start + 2 <= seen < max(start + 2, second) + 0.8, timing
        assert seen < second + 1.5, timing
        # from its agent_nick; the box is closed, so the launcher counts it
        assert box.locator(".msg.trigger").text_content() == "RoboCan I help you choose?"
        box.locator("#badge").wait_for(state="visible")
        assert box.locator("#badge").text_content() == "1"
        received = agent.wait("chat.message_received", timeout=5)
        assert received["message"]["kind"] == "trigger" and received["message"]["text"] == "Can I help you choose?"

        # once: not again on page two's own onload, nor later
        v.page.wait_for_timeout(1500)
        assert box.locator(".msg.trigger").count() == 1
        listed = server.api.get(f"/accounts/{server.account_id}/conversations/").json()["records"]
        assert len(listed) == 1
        assert [m["text"] for m in server.messages(listed[0]["id"])].count("Can I help you choose?") == 1
        assert v.errors == [] and v.elsewhere == []
    finally:
        v.close()


def test_an_onopen_trigger_greets_the_visitor_who_opens_the_box(browser, server, site, agent):
    r = server.api.post(f"/accounts/{server.account_id}/triggers/create", json={
        "name": "Greeting", "event": "onopen",
        "actions": [{"name": "message", "agent_nick": "Robo", "message": "Hi! Ask me anything."}]})
    assert r.status_code == 200, r.text
    v = visitor(browser, site, "ws")
    try:
        v.open(site.snippet())
        box = connected(v)
        v.page.wait_for_timeout(800)
        assert box.locator(".msg.trigger").count() == 0  # loading the page is not opening the box
        v.click_launcher(box)
        box.locator(".msg.trigger").wait_for(timeout=5000)
        assert box.locator(".msg.trigger").text_content() == "RoboHi! Ask me anything."
        assert agent.wait("chat.message_received", timeout=5)["message"]["kind"] == "trigger"
        assert v.errors == [] and v.elsewhere == []
    finally:
        v.close()


PICTURE = SCREENSHOT.with_name("chat-box-conversation.png")  # test_chat_box.py's is chat-box.png, the launcher's test


def _update_screenshot() -> bool:
    return not PICTURE.exists() or os.environ.get("OPENSUPP_UPDATE_SCREENSHOTS") == "1"


PIXELS = """async ([a, b, rect]) => {  // how many pixels of rect differ between two PNGs
  const load = data => new Promise((ok, fail) => { const i = new Image(); i.onload = () => ok(i);
    i.onerror = fail; i.src = 'data:image/png;base64,' + data; });
  const read = async data => { const image = await load(data); const c = document.createElement('canvas');
    c.width = image.width; c.height = image.height; const g = c.getContext('2d'); g.drawImage(image, 0, 0);
    return g.getImageData(rect.x, rect.y, rect.width, rect.height).data; };
  const [x, y] = [await read(a), await read(b)];
  let differ = 0;
  for (let n = 0; n < x.length; n += 4) {
    if (Math.abs(x[n] - y[n]) + Math.abs(x[n + 1] - y[n + 1]) + Math.abs(x[n + 2] - y[n + 2]) > 48) differ++;
  }
  return { differ, of: x.length / 4 };
}"""


def _differ(v: Visit, a: bytes, b: bytes, rect: dict[str, float]) -> float:
    """The share of ``rect``'s pixels that differ between the screenshots ``a`` and ``b``."""
    whole = {k: round(rect[k]) for k in ("x", "y", "width", "height")}
    counted = v.page.evaluate(PIXELS, [base64.b64encode(a).decode(), base64.b64encode(b).decode(), whole])
    return float(counted["differ"]) / float(counted["of"])


def test_the_readme_picture_is_the_open_box_with_a_conversation(browser, server, site, agent, tmp_path):
    v = visitor(browser, site, "ws")
    try:
        v.open(site.snippet() + "<script>smartsupp('chat:open')</script>",
               "<h1>Acme Shop</h1><p>Bicycles, parts and repairs. Delivery across Europe.</p>")
        box = connected(v)
        box.locator("#pane").wait_for(state="visible")
        assert box.locator("#status").text_content() == "We are online"
        fonts = "() => document.fonts.ready.then(() => document.fonts.status)"
        assert box.evaluate(fonts) == v.page.evaluate(fonts) == "loaded"
        frame = v.frame_box(box)
        assert frame["width"] >= 300 and frame["height"] >= 400
        v.painted(box)
        before = v.page.screenshot()  # the open box, its log with only the greeting

        box.locator("#input").fill("Hello! Do you ship to Prague?")
        box.locator("#input").press("Enter")
        conversation = agent.wait("chat.message_received")["conversationId"]
        box.wait_for_function("() => !document.querySelector('.msg.pending')")
        agent.send(type="chat.message", conversationId=conversation, clientId="agent-1",
                   text="Hi, I'm Anna. Yes, we deliver to Prague in two days.")
        box.locator(".msg.agent").wait_for()
        assert box.locator(".msg.visitor, .msg.agent").all_text_contents() == [
            "YouHello! Do you ship to Prague?", "AnnaHi, I'm Anna. Yes, we deliver to Prague in two days."]
        assert box.locator(".msg.agent .from").text_content() == "Anna"
        assert box.locator("#input").input_value() == ""
        messages = box.locator("#log").bounding_box()
        assert messages is not None
        # painted: fonts loaded, both bubbles inside the box and the viewport, the log at its end
        assert box.evaluate(fonts) == "loaded"
        for bubble in box.locator(".msg.visitor, .msg.agent").all():
            assert bubble.is_visible()
            where = bubble.bounding_box()
            assert where is not None
            assert frame["y"] <= where["y"] and where["y"] + where["height"] <= frame["y"] + frame["height"]
            assert frame["x"] <= where["x"] and where["x"] + where["width"] <= frame["x"] + frame["width"]
        assert box.evaluate("() => { const l = document.getElementById('log');"
                            " return l.scrollTop + l.clientHeight >= l.scrollHeight - 1; }")
        assert v.frame_box(box) == frame
        v.painted(box)  # the box's frame painted, then the host page that composites it

        picture = PICTURE if _update_screenshot() else tmp_path / PICTURE.name
        picture.parent.mkdir(parents=True, exist_ok=True)
        shot = v.page.screenshot(path=str(picture))
        v.page.evaluate("() => smartsupp('chat:hide')")
        box.frame_element().wait_for_element_state("hidden")
        without = v.page.screenshot()

        # the box is in the picture (much of its area differs from the page without it), and so is
        # the conversation (the messages' area differs from the open box's before it)
        boxed, talked = _differ(v, shot, without, frame), _differ(v, shot, before, messages)
        assert boxed > 0.1  # the open box: its header, bubbles, input (much of it is white, as the page)
        assert talked > 0.03  # the two bubbles: about 6 % of the log's pixels
        assert len(shot) > len(without) + 5_000
        assert picture.stat().st_size > 20_000
        assert v.errors == [] and v.elsewhere == []
    finally:
        v.close()

