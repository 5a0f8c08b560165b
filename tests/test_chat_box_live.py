"""The chat box talking to the chat transport (docs/chat-protocol.md) in a real browser: the
visitor writes, an agent connection reads and answers, the visitor sees it; a reload keeps the
conversation (and fires no event twice); a socket cut mid-conversation loses and doubles
nothing; a closed chat is rated; an offline account shows the offline form; two browser
contexts are two visitors. Over the WebSocket and over the long-poll fallback (the box's
WebSocket removed, as a network that blocks it does).

The server is the real one (create_app under uvicorn, on SQLite): the transport over the
database's chat service, an agent who is a user the partner API made, and what was stored read
back through the partner API and the database file.
"""

from __future__ import annotations

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
from test_chat_box import CHROMIUM, HostSite, Live, Visit
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


class Agent:
    """An agent connection (docs/chat-protocol.md 7): frames it skipped while waiting are kept."""

    def __init__(self, server: Server) -> None:
        self.ws: ClientConnection = connect(server.url.replace("http", "ws") + "/chat/ws/agent")
        self.kept: list[dict[str, Any]] = []
        self.refs = 0
        self.send(type="agent.connect", token=protocol.agent_token(SECRET, server.account_id, server.agent_id))
        assert self.wait("ack")["data"]["agent"]["nickname"] == "Anna"

    def send(self, **frame: Any) -> None:
        self.refs += 1
        self.ws.send(json.dumps({"ref": f"a{self.refs}", **frame}))

    def wait(self, kind: str, timeout: float = 20, **fields: Any) -> dict[str, Any]:
        def matches(frame: dict[str, Any]) -> bool:
            return frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())

        for n, frame in enumerate(self.kept):
            if matches(frame):
                return self.kept.pop(n)
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                raise AssertionError(f"the agent got no {kind} {fields} in {timeout} s; it got {self.kept}") from None
            if matches(frame):
                return dict(frame)
            self.kept.append(frame)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        rules = "MAP *.shop.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", f"--host-resolver-rules={rules}"])
        try:
            yield browser
        finally:
            browser.close()


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
    box = v.box()
    box.wait_for_function("() => window.opensuppBox.state.connected", timeout=15_000)
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
