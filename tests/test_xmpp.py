"""Agents chat from an XMPP client as uid<ID>@<domain>, through Debian's Prosody.

The stack is real: `opensupp xmpp setup` writes Prosody's config and module; Prosody runs as its
own user on free ports with a self-signed certificate; `opensupp serve` runs as a process with
the setup's file, its bridge connected as the component; the agent is slixmpp over STARTTLS; the
visitor is the chat box in Debian's Chromium, or the visitor WebSocket. Both databases.

With OPENSUPP_REQUIRE_PROSODY=1 (.ci/run) a missing Prosody fails the run instead of skipping.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Debian's Chromium)
from test_chat_box_live import Socket
from websockets.sync.client import connect
from xmpp_kit import DOMAIN, Prosody, XmppAgent, prosody_missing

from conftest import LiveServer, cli_key, free_port, opensupp, start_server, stop_server
from opensupp.config import Settings
from opensupp.signin.service import USER_FREE
from opensupp.xmpp.jids import visitor_local

pytestmark = pytest.mark.slow
PASSWORD = "Agent-pass-1"


@pytest.fixture(scope="module")
def prosody_here() -> None:
    missing = prosody_missing()
    if missing:
        if os.environ.get("OPENSUPP_REQUIRE_PROSODY") == "1":
            pytest.fail(missing + "; OPENSUPP_REQUIRE_PROSODY=1 requires it", pytrace=False)
        pytest.skip(missing)


class Stack:
    """Prosody and `opensupp serve` (its bridge inside), set up together; a partner's key."""

    def __init__(self, database_url: str, directory: Path) -> None:
        self.database_url = database_url
        self.directory = directory
        self.data_dir = directory / "opensupp"
        port = free_port()
        self.prosody = Prosody(Settings(data_dir=self.data_dir), f"http://127.0.0.1:{port}")
        self.prosody.start()
        self.env = {**os.environ, "OPENSUPP_DATABASE_URL": database_url, "OPENSUPP_DATA_DIR": str(self.data_dir)}
        self.server: LiveServer = start_server(database_url, directory, env=self.env, port=port)
        self.api = httpx.Client(base_url=self.server.url, timeout=20, headers={"apiKey": cli_key(self.env)})
        self.wait_for_bridge()

    def wait_for_bridge(self, connects: int = 1, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.server.log_text().count("XMPP bridge: connected to Prosody") < connects:
            assert time.monotonic() < deadline, f"the bridge did not connect: {self.server.log_text()[-3000:]}"
            time.sleep(0.05)

    def account(self, title: str = "Acme") -> tuple[int, str]:
        r = self.api.post("/accounts/create", json={"title": title, "lang": "en"})
        assert r.status_code == 200, r.text
        return int(r.json()["id"]), r.json()["accountKey"]

    def agent(self, account_id: int, nickname: str = "Anna", password: str = PASSWORD) -> int:
        email = f"{nickname.lower()}-{time.monotonic_ns()}@acme.example"
        r = self.api.post(f"/accounts/{account_id}/users/create", json={
            "email": email, "password": password, "fullname": f"{nickname} Agent", "nickname": nickname})
        assert r.status_code == 200, r.text
        return int(r.json()["id"])

    def close(self) -> None:
        self.api.close()
        stop_server(self.server)
        self.prosody.close()


@pytest.fixture(scope="module")
def stack(prosody_here: None, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(database_url, tmp_path_factory.mktemp("xmpp"))
    try:
        yield s
    finally:
        s.close()


class Visitor(Socket):
    """A visitor over the WebSocket (docs/chat-protocol.md)."""

    def __init__(self, server: LiveServer, key: str, name: str | None = None) -> None:
        url = server.url.replace("http", "ws") + f"/chat/ws/visitor?key={key}"
        super().__init__(connect(url, origin="http://www.shop.test", legacy=True), "visitor", timeout=15)
        self.send(type="visitor.connect", **({"name": name} if name else {}))
        ack = self.wait("ack")["data"]
        self.vid: str = ack["vid"]
        self.status: str = ack["account"]["status"]
        local = visitor_local(self.vid)
        assert local is not None
        self.jid = f"{local}@visitors.{DOMAIN}"

    def say(self, text: str) -> None:
        """Sends a message and waits for its own ack: the message is stored."""
        ref = self.send(type="chat.message", clientId=f"c-{time.monotonic_ns()}", text=text)
        self.wait("ack", ref=ref)

    def agent_message(self, text: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.wait("chat.message_received", timeout=max(0.01, deadline - time.monotonic()))
            if frame["message"]["kind"] == "agent" and frame["message"]["text"] == text:
                return frame

    def close(self) -> None:
        self.ws.close()


def _agent(stack: Stack, user_id: int, password: str = PASSWORD, resource: str = "laptop") -> XmppAgent:
    return XmppAgent(stack.prosody, f"uid{user_id}", password, resource)


# --------------------------------------------------------------------------- logging in


def test_an_agent_logs_in_as_uid_id_with_the_password_the_partner_api_set(stack: Stack) -> None:
    account_id, _ = stack.account()
    user_id = stack.agent(account_id)
    right, wrong = _agent(stack, user_id), _agent(stack, user_id, "not-the-password")
    try:
        assert wrong.login() is False
        assert right.login() is True
        right.logout()
        # the password changed through the partner API: the next login takes the new one only
        r = stack.api.post(f"/accounts/{account_id}/users/{user_id}/update", json={"password": "A-new-pass-2"})
        assert r.status_code == 200, r.text
        assert _agent_login(stack, user_id, PASSWORD) is False
        assert _agent_login(stack, user_id, "A-new-pass-2") is True
        # a deleted user is refused
        assert stack.api.get(f"/accounts/{account_id}/users/{user_id}/delete").status_code == 204
        assert _agent_login(stack, user_id, "A-new-pass-2") is False
    finally:
        right.close()
        wrong.close()
    # an e-mail's local part, or a user id that is no one's, is not a login
    assert XmppAgentLogin(stack, "anna", PASSWORD) is False
    assert XmppAgentLogin(stack, "uid999999999", PASSWORD) is False
    log = stack.server.log_text()
    assert PASSWORD not in log and "A-new-pass-2" not in log and "not-the-password" not in log


def _agent_login(stack: Stack, user_id: int, password: str) -> bool:
    return XmppAgentLogin(stack, f"uid{user_id}", password)


def XmppAgentLogin(stack: Stack, user: str, password: str) -> bool:  # noqa: N802  (reads as a sentence)
    client = XmppAgent(stack.prosody, user, password)
    try:
        return client.login()
    finally:
        client.close()


# --------------------------------------------------------------------------- the chat


def test_a_visitor_becomes_a_contact_and_the_two_chat_through_the_same_core(stack: Stack) -> None:
    account_id, key = stack.account()
    user_id = stack.agent(account_id)
    agent = _agent(stack, user_id)
    visitor = None
    try:
        assert agent.login()
        visitor = Visitor(stack.server, key, name="Vera Visitor")
        # the agent's available presence makes the account online (an agent device of type xmpp)
        assert visitor.status == "online" or visitor.wait("account.updated", status="online")
        visitor.say("Hello, is the blue kettle in stock?")
        got = agent.message(body="Hello, is the blue kettle in stock?")
        assert got["from"] == visitor.jid and got["type"] == "chat"
        roster = agent.roster()
        assert roster[visitor.jid] == {"name": "Vera Visitor", "subscription": "both", "groups": ["Visitors"]}

        assert agent.nothing(0.3) == []  # once

        # typing, both ways (XEP-0085 chat states / the chat's typing events)
        visitor.send(type="chat.typing", **{"is": True})
        assert agent.message(body="")["state"] == "composing"
        agent.typing(visitor.jid, "composing")
        typing = visitor.wait("chat.agent_typing")
        assert typing["is"] is True and typing["agent"] == {"id": user_id, "nickname": "Anna"}
        agent.typing(visitor.jid, "paused")
        assert visitor.wait("chat.agent_typing")["is"] is False

        agent.send(visitor.jid, "Yes, two left.")
        agent.send(visitor.jid, "Shall I reserve one?")  # at once: stored in the order sent
        visitor.agent_message("Yes, two left.")
        frame = visitor.agent_message("Shall I reserve one?")
        assert frame["message"]["userId"] == user_id and frame["message"]["agentNick"] == "Anna"
        # stored as the dashboard stores it: the partner API reads the conversation
        conversations = stack.api.get(f"/accounts/{account_id}/conversations/").json()["records"]
        assert len(conversations) == 1
        stored = stack.api.get(f"/accounts/{account_id}/conversations/{conversations[0]['id']}/get").json()
        assert [(m["type"], m["text"]) for m in stored["messages"]] == [
            ("visitor", "Hello, is the blue kettle in stock?"), ("agent", "Yes, two left."),
            ("agent", "Shall I reserve one?")]

        # the agent's own devices still reach one another (only other users are kept apart)
        phone = _agent(stack, user_id, resource="phone")
        try:
            assert phone.login()
            agent.send(f"uid{user_id}@{DOMAIN}/phone", "a note to my phone")
            assert phone.message(body="a note to my phone")["from"] == f"uid{user_id}@{DOMAIN}/laptop"
        finally:
            phone.close()

        # away: the agent counts, but not as online; available again: online
        agent.status("away")
        visitor.wait("account.updated", status="offline")
        agent.status(None)
        visitor.wait("account.updated", status="online")
        agent.logout()
        visitor.wait("account.updated", status="offline")
    finally:
        if visitor is not None:
            visitor.close()
        agent.close()


def test_in_chromium_the_chat_box_and_an_xmpp_client_chat(stack: Stack, browser: Any) -> None:
    from test_chat_box import HostSite, Live, Visit, pump_browsers

    account_id, key = stack.account()
    user_id = stack.agent(account_id)
    agent = _agent(stack, user_id)
    host = HostSite()
    v = Visit(browser, Live(stack.server.url, key, host))
    try:
        assert agent.login()
        v.open(v.live.snippet())
        box = v.box()
        box.wait_for_function("() => window.opensuppBox.state.connected", timeout=15_000)
        box.wait_for_function("() => document.getElementById('status').textContent === 'We are online'")
        v.click_launcher(box)
        box.locator("#input").fill("Do you ship to Brno?")
        box.locator("#input").press("Enter")
        got = agent.message(body="Do you ship to Brno?", pump=pump_browsers)
        vid = v.page.evaluate("() => smartsupp.vid")
        assert got["from"] == f"{visitor_local(vid)}@visitors.{DOMAIN}"

        agent.send(got["from"], "Yes: in two days, <b>free</b> over 50 EUR.")
        box.locator(".msg.agent").wait_for()
        assert box.locator(".msg.agent").text_content() == "AnnaYes: in two days, <b>free</b> over 50 EUR."
        conversation = stack.api.get(f"/accounts/{account_id}/conversations/").json()["records"][0]
        stored = stack.api.get(f"/accounts/{account_id}/conversations/{conversation['id']}/get").json()
        assert [(m["type"], m["text"], m["userId"]) for m in stored["messages"]] == [
            ("visitor", "Do you ship to Brno?", None),
            ("agent", "Yes: in two days, <b>free</b> over 50 EUR.", str(user_id))]
        assert v.errors == [] and v.elsewhere == []
    finally:
        v.close()
        host.close()
        agent.close()


def test_a_foreign_or_ended_conversation_and_a_bad_text_get_an_xmpp_error(stack: Stack) -> None:
    account_id, key = stack.account()
    other_account, other_key = stack.account("Other shop")
    user_id = stack.agent(account_id)
    stranger_id = stack.agent(other_account, "Otto")
    agent, stranger = _agent(stack, user_id), _agent(stack, stranger_id)
    visitor = Visitor(stack.server, key)
    try:
        assert agent.login() and stranger.login()
        visitor.say("Hi there")
        agent.message(body="Hi there")
        assert stranger.nothing(0.5) == []  # another account's agent hears nothing of it

        stranger.send(visitor.jid, "I am not of this shop", stanza_id="s1")
        error = stranger.message(type="error")
        assert error["condition"] == "item-not-found" and error["text"] == "No such visitor in your account."
        # nor does it reach the other account's agents themselves (mod_opensupp_isolate, from the setup)
        stranger.send(f"uid{user_id}@{DOMAIN}", "psst, about your customers")
        error = stranger.message(type="error")
        assert error["from"] == f"uid{user_id}@{DOMAIN}" and error["text"] == (
            "Agents write to visitors here, not to other users.")
        assert agent.nothing(0.5) == []

        agent.send(visitor.jid, "x" * 2001, stanza_id="long")
        error = agent.message(type="error")
        assert error["condition"] == "not-acceptable" and "2" in error["text"]

        agent.send(f"{'0' * 32}@visitors.{DOMAIN}", "anyone?")
        missing = agent.message(type="error")
        assert missing["condition"] == "item-not-found"

        conversation = stack.api.get(f"/accounts/{account_id}/conversations/").json()["records"][0]
        r = stack.api.post(f"/accounts/{account_id}/conversations/{conversation['id']}/close", json={})
        assert r.status_code == 200, r.text
        agent.send(visitor.jid, "One more thing")
        error = agent.message(type="error")
        assert error["condition"] == "not-allowed" and "ended" in error["text"]
        # the ended conversation's visitor left the agent's contacts (a roster holds those in progress)
        deadline = time.monotonic() + 10
        while visitor.jid in agent.roster():
            assert time.monotonic() < deadline, agent.roster()
            time.sleep(0.05)
        stored = stack.api.get(f"/accounts/{account_id}/conversations/{conversation['id']}/get").json()
        # none of the refused ones: the visitor's message, and the close
        assert [(m["type"], m["text"]) for m in stored["messages"]] == [("visitor", "Hi there"),
                                                                         ("system", "close.agentClose")]
        assert stored["status"] == "closed"
    finally:
        visitor.close()
        agent.close()
        stranger.close()


def test_an_offline_agent_gets_the_visitors_messages_at_the_next_login(stack: Stack) -> None:
    account_id, key = stack.account()
    user_id = stack.agent(account_id)
    agent = _agent(stack, user_id)
    visitor = Visitor(stack.server, key, name="Olga")
    try:
        assert agent.login()  # once: the bridge now writes this account's visitors to this agent
        agent.logout()
        visitor.say("Are you there?")
        visitor.say("I will wait for an answer.")  # both stored (acked) before the next login
        assert agent.login()
        first, second = agent.message(), agent.message()
        assert (first["body"], second["body"]) == ("Are you there?", "I will wait for an answer.")
        assert first["from"] == second["from"] == visitor.jid
        agent.send(visitor.jid, "Back now: how can I help?")
        visitor.agent_message("Back now: how can I help?")
    finally:
        visitor.close()
        agent.close()


def test_prosody_restarted_mid_chat_the_bridge_comes_back_and_nothing_is_lost(stack: Stack) -> None:
    account_id, key = stack.account()
    user_id = stack.agent(account_id)
    agent = _agent(stack, user_id)
    visitor = Visitor(stack.server, key)
    try:
        assert agent.login()
        visitor.say("Before the restart")
        agent.message(body="Before the restart")
        connects = stack.server.log_text().count("XMPP bridge: connected to Prosody")

        stack.prosody.stop()
        visitor.say("While Prosody is down")  # stored (acked); the bridge cannot hand it on now
        stack.prosody.start()
        stack.wait_for_bridge(connects + 1)
        agent.logout()  # its connection went with the old Prosody
        assert agent.login()
        got = agent.message(timeout=20)
        if got["body"] == "Before the restart":  # written again: it was in the moments before the loss
            got = agent.message(timeout=20)
        assert (got["body"], got["from"]) == ("While Prosody is down", visitor.jid)
        assert agent.nothing(0.5) == []  # once
        agent.send(visitor.jid, "Got it after the restart")
        visitor.agent_message("Got it after the restart")
        log = stack.server.log_text()
        assert "the connection to Prosody was lost" in log
    finally:
        visitor.close()
        agent.close()


def test_the_bridge_runs_in_a_process_of_its_own_beside_the_server(prosody_here: None, database_url: str,
                                                                   tmp_path: Path) -> None:
    """`opensupp xmpp run` with OPENSUPP_XMPP=0 on the server: the chat's events and the agents'
    presence cross the processes through PostgreSQL's LISTEN/NOTIFY."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a bridge in its own process hears the server's processes through PostgreSQL (or Redis)")
    port = free_port()
    data_dir = tmp_path / "opensupp"
    prosody = Prosody(Settings(data_dir=data_dir), f"http://127.0.0.1:{port}")
    env = {**os.environ, "OPENSUPP_DATABASE_URL": database_url, "OPENSUPP_DATA_DIR": str(data_dir),
           "OPENSUPP_XMPP": "0"}
    log = tmp_path / "bridge.log"
    bridge = server = agent = visitor = None
    try:
        prosody.start()
        server = start_server(database_url, tmp_path, env=env, port=port)
        bridge = subprocess.Popen([sys.executable, "-m", "opensupp", "xmpp", "run"], env=env,
                                  stdout=log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "XMPP bridge: connected to Prosody" not in log.read_text():
            assert time.monotonic() < deadline and bridge.poll() is None, log.read_text()
            time.sleep(0.05)
        assert "XMPP bridge" not in server.log_text()  # the server runs none
        with httpx.Client(base_url=server.url, timeout=20, headers={"apiKey": cli_key(env)}) as api:
            r = api.post("/accounts/create", json={"title": "Split", "lang": "en"})
            account_id, key = int(r.json()["id"]), r.json()["accountKey"]
            r = api.post(f"/accounts/{account_id}/users/create", json={
                "email": f"split-{time.monotonic_ns()}@acme.example", "password": PASSWORD, "fullname": "S Agent",
                "nickname": "Sam"})
            user_id = int(r.json()["id"])
        agent = XmppAgent(prosody, f"uid{user_id}", PASSWORD)
        assert agent.login()
        visitor = Visitor(server, key)
        assert visitor.status == "online" or visitor.wait("account.updated", status="online")
        visitor.say("Across processes?")
        assert agent.message(body="Across processes?")["from"] == visitor.jid
        agent.send(visitor.jid, "Yes, through PostgreSQL.")
        visitor.agent_message("Yes, through PostgreSQL.")
    finally:
        for closing in (visitor, agent):
            if closing is not None:
                closing.close()
        if bridge is not None:
            bridge.terminate()
            bridge.wait(timeout=15)
        if server is not None:
            stop_server(server)
        prosody.close()


# --------------------------------------------------------------------------- the endpoint Prosody asks


def _basic(secret: str) -> str:
    return "Basic " + base64.b64encode(f"prosody:{secret}".encode()).decode()


def test_the_authentication_endpoint_answers_prosody_only(stack: Stack) -> None:
    secret = stack.prosody.config.read_text().split('opensupp_auth_secret = "', 1)[1].split('"', 1)[0]
    account_id, _ = stack.account()
    user_id = stack.agent(account_id)
    url = stack.server.url + "/xmpp/auth/check_password"
    form = {"user": f"uid{user_id}", "server": DOMAIN, "pass": PASSWORD, "ip": "192.0.2.7"}
    assert httpx.post(url, data=form, headers={"Authorization": _basic(secret)}).text == "true"
    wrong = httpx.post(url, data=form, headers={"Authorization": _basic("guess")})
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert httpx.post(url, data=form).status_code == 401
    big = httpx.post(url, content=b"user=" + b"u" * 5000, headers={"Authorization": _basic(secret),
                                                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413
    # the e-mail is not the login, nor is another domain
    email = stack.api.get(f"/accounts/{account_id}/users/{user_id}/get").json()["email"]
    assert httpx.post(url, data=form | {"user": email}, headers={"Authorization": _basic(secret)}).text == "false"
    assert httpx.post(url, data=form | {"server": "other.test"},
                      headers={"Authorization": _basic(secret)}).text == "false"
    exists = stack.server.url + "/xmpp/auth/user_exists"
    assert httpx.post(exists, data={"user": f"uid{user_id}", "server": DOMAIN},
                      headers={"Authorization": _basic(secret)}).text == "true"
    assert httpx.post(exists, data={"user": "uid999999999", "server": DOMAIN},
                      headers={"Authorization": _basic(secret)}).text == "false"
    # a guesser at one address: past the free attempts the login is locked there, the right
    # password too; the lock is the sign-in page's (the same keys, the same rule)
    for _ in range(USER_FREE + 1):
        assert httpx.post(url, data=form | {"pass": "guess", "ip": "198.51.100.9"},
                          headers={"Authorization": _basic(secret)}).text == "false"
    locked = httpx.post(url, data=form | {"ip": "198.51.100.9"}, headers={"Authorization": _basic(secret)})
    assert locked.text == "false"
    assert "locked" in stack.server.log_after("locked for")
    # ... at that address only
    assert httpx.post(url, data=form | {"ip": "203.0.113.5"}, headers={"Authorization": _basic(secret)}).text == "true"
    # the password never reaches the log
    assert PASSWORD not in stack.server.log_text()


def test_the_authentication_endpoint_refuses_other_addresses(tmp_path: Path, database_url: str) -> None:
    """Only loopback: an address that is not gets 403, whatever it sends."""
    import asyncio
    import concurrent.futures

    from opensupp.app import create_app
    from opensupp.xmpp.config import write_setup

    settings = Settings(database_url=database_url, data_dir=tmp_path, outbox_worker=False, xmpp=False)
    prosody_file, _, _ = write_setup(settings, domain=DOMAIN, out=tmp_path / "etc", opensupp_url="http://127.0.0.1:1")
    secret = prosody_file.read_text().split('opensupp_auth_secret = "', 1)[1].split('"', 1)[0]

    async def ask(client: tuple[str, int]) -> httpx.Response:
        app = create_app(settings)
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://opensupp.test") as http:
                return await http.post("/xmpp/auth/user_exists", data={"user": "uid1", "server": DOMAIN},
                                       headers={"Authorization": _basic(secret)})
        finally:
            await app.shutdown()

    def run(client: tuple[str, int]) -> httpx.Response:  # off this thread, where Playwright's loop may run
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, ask(client)).result()

    refused = run(("10.1.2.3", 5555))
    assert refused.status_code == 403 and refused.text == "only Prosody on this machine may ask\n"
    assert run(("127.0.0.1", 5555)).status_code == 200


# --------------------------------------------------------------------------- the setup command


def test_the_setup_command_writes_both_sides_with_their_secrets_kept_apart(tmp_path: Path) -> None:
    env = {**os.environ, "OPENSUPP_DATA_DIR": str(tmp_path / "data")}
    out = opensupp("xmpp", "setup", "--domain", "Chat.Example.COM", "--out", str(tmp_path / "prosody"),
                   "--data-path", str(tmp_path / "pdata"), env=env)
    assert "uid<ID>@chat.example.com" in out.stdout
    config = (tmp_path / "prosody" / "prosody.cfg.lua").read_text()
    mine = json.loads((tmp_path / "data" / "xmpp.json").read_text())
    assert mine["domain"] == "chat.example.com" and mine["component_port"] == 5347
    assert 'VirtualHost "chat.example.com"' in config and 'Component "visitors.chat.example.com"' in config
    assert f'component_secret = "{mine["component_secret"]}"' in config
    auth_secret = config.split('opensupp_auth_secret = "', 1)[1].split('"', 1)[0]
    assert auth_secret not in json.dumps(mine)  # opensupp keeps only its SHA-256
    assert (tmp_path / "data" / "xmpp.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "prosody" / "prosody.cfg.lua").stat().st_mode & 0o077 in (0, 0o040)
    assert (tmp_path / "prosody" / "modules" / "mod_auth_opensupp.lua").read_text().startswith("-- mod_auth_opensupp")
    assert '"opensupp_isolate";' in config
    assert (tmp_path / "prosody" / "modules" / "mod_opensupp_isolate.lua").read_text().startswith("-- mod_opensupp")
    # again: new secrets on both sides
    opensupp("xmpp", "setup", "--domain", "chat.example.com", "--out", str(tmp_path / "prosody"),
             "--data-path", str(tmp_path / "pdata"), env=env)
    assert json.loads((tmp_path / "data" / "xmpp.json").read_text())["component_secret"] != mine["component_secret"]

    # as root for the user who runs opensupp: --data-dir (sudo drops OPENSUPP_DATA_DIR) and --owner
    if os.geteuid() == 0:
        opensupp("xmpp", "setup", "--domain", "chat.example.com", "--out", str(tmp_path / "prosody"),
                 "--data-path", str(tmp_path / "pdata"), "--data-dir", str(tmp_path / "theirs"), "--owner", "nobody",
                 env={k: v for k, v in env.items() if k != "OPENSUPP_DATA_DIR"})
        assert (tmp_path / "theirs" / "xmpp.json").stat().st_uid == pwd.getpwnam("nobody").pw_uid
    for bad, says in ((["--domain", "not a domain"], "--domain"), (["--domain", "localhost"], "--domain"),
                      (["--domain", "chat.example.com", "--c2s-port", "5347"], "must differ"),
                      (["--domain", "chat.example.com", "--opensupp-url", "ftp://x"], "--opensupp-url"),
                      (["--domain", "chat.example.com", "--owner", "no-such-user-here"], "--owner")):
        failed = opensupp("xmpp", "setup", *bad, "--out", str(tmp_path / "p2"), env=env, check=False)
        assert failed.returncode == 1 and says in failed.stderr and "Traceback" not in failed.stderr


def test_a_broken_setup_file_stops_the_bridge_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "xmpp.json").write_text("{not json")
    env = {**os.environ, "OPENSUPP_DATA_DIR": str(tmp_path), "OPENSUPP_DATABASE_URL": f"sqlite:///{tmp_path}/o.db"}
    failed = opensupp("xmpp", "run", env=env, check=False)
    assert failed.returncode == 1 and "opensupp xmpp setup" in failed.stderr and "Traceback" not in failed.stderr
