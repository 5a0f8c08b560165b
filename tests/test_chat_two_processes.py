"""Two opensupp processes on one PostgreSQL database, as a deployment with two workers or two
machines behind a load balancer runs: a visitor's box talks to process A, the agent's socket
and the partner API to process B, and what one side says reaches the other (the chat's events
between processes go through PostgreSQL's LISTEN/NOTIFY, agents' presence included).

Each process is ``opensupp serve`` as a real subprocess (conftest.start_server), on its own
port, with the same OPENSUPP_SECRET_KEY (the agent's token and the visitor's token are signed
with it). The visitor is Chromium on a host page of another origin, the guide's snippet
pointing at A. Skips when Chromium is missing (OPENSUPP_REQUIRE_BROWSER=1 makes that a
failure), and, like the rest of the suite, when PostgreSQL is (OPENSUPP_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_chat_box import HostSite, Live, Visit
from test_chat_box import browser as browser  # noqa: F401 (the fixture: Chromium, or a skip)
from test_chat_box_live import SECRET, Agent, connected

from conftest import _fresh_postgres, _postgres_admin, cli_key, start_server, stop_server
from opensupp.migrate import migrate


def off_loop(work: Callable[..., Any], *args: Any) -> Any:
    """``work`` (which runs its own asyncio loop) on another thread: Playwright's sync API keeps
    a loop running on this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result()


@pytest.fixture
def processes(browser: Any, tmp_path: Path) -> Iterator[SimpleNamespace]:  # noqa: F811
    """A fresh PostgreSQL database, migrated; processes A and B on it; an account with an agent, Anna."""
    name, url = off_loop(_fresh_postgres)
    started = []
    try:
        off_loop(migrate, url)
        env = {"OPENSUPP_SECRET_KEY": SECRET, "OPENSUPP_DATA_DIR": str(tmp_path),
               "OPENSUPP_REDIS_URL": ""}  # LISTEN/NOTIFY, even where the environment names a Redis
        with ThreadPoolExecutor(3) as pool:  # the two processes and a partner's key, at once
            starting = [pool.submit(start_server, url, tmp_path, env=env) for _ in range(2)]
            key = pool.submit(cli_key, {**os.environ, "OPENSUPP_DATABASE_URL": url})
            for future in starting:
                with contextlib.suppress(Exception):
                    started.append(future.result())
            a, b = [future.result() for future in starting]
            api = httpx.Client(base_url=b.url, timeout=20, headers={"apiKey": key.result()})
        r = api.post("/accounts/create", json={"title": "Acme", "lang": "en"})
        assert r.status_code == 200, r.text
        account_key, account_id = r.json()["accountKey"], int(r.json()["id"])
        r = api.post(f"/accounts/{account_id}/users/create", json={
            "email": "anna@acme.example", "password": "secret-pass", "fullname": "Anna Agent", "nickname": "Anna"})
        assert r.status_code == 200, r.text
        host = HostSite()
        try:
            yield SimpleNamespace(a=a, b=b, api=api, account_key=account_key, account_id=account_id,
                                  agent_id=int(r.json()["id"]), host=host)
        finally:
            host.close()
            api.close()
    finally:
        for server in started:
            stop_server(server)
        off_loop(_postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_visitor_on_one_process_and_an_agent_on_another_chat(browser, processes):  # noqa: F811
    p = processes
    # the agent's socket on B (Agent reads url, account_id, agent_id)
    agent = Agent(SimpleNamespace(url=p.b.url, account_id=p.account_id, agent_id=p.agent_id))  # type: ignore[arg-type]
    site = Live(p.a.url, p.account_key, p.host)
    v = Visit(browser, site)
    try:
        v.open(site.snippet())
        box = connected(v)
        assert box.url.startswith(p.a.url + "/chat/box?")
        assert box.evaluate("() => window.opensuppBox.connection.mode()") == "ws"
        # online: A knows of the agent connected to B
        box.wait_for_function("() => document.getElementById('status').textContent === 'We are online'",
                              timeout=10_000)

        # the visitor writes on A; the agent on B reads it
        v.click_launcher(box)
        box.locator("#input").fill("Is the blue one in stock?")
        box.locator("#input").press("Enter")
        received = agent.wait("chat.message_received", timeout=10)
        conversation = received["conversationId"]
        assert received["message"]["text"] == "Is the blue one in stock?"
        assert received["message"]["kind"] == "visitor"
        box.wait_for_function("() => !document.querySelector('.msg.pending')", timeout=10_000)

        # the agent answers on B; the box on A shows it, from Anna
        agent.send(type="chat.message", conversationId=conversation, clientId="agent-1", text="Yes, two left.")
        box.locator(".msg.agent").first.wait_for(timeout=10_000)
        assert box.locator(".msg.agent").all_text_contents() == ["AnnaYes, two left."]

        # the partner API on B writes as Anna; the box on A shows it too, after the first answer
        r = p.api.post(f"/accounts/{p.account_id}/conversations/{conversation}/messages",
                       json={"userId": p.agent_id, "text": "Shall I reserve one?"})
        assert r.status_code == 200, r.text
        box.wait_for_function("() => document.querySelectorAll('.msg.agent').length === 2", timeout=10_000)
        assert box.locator(".msg.agent").all_text_contents() == ["AnnaYes, two left.", "AnnaShall I reserve one?"]
        assert box.locator(".msg.visitor").all_text_contents() == ["YouIs the blue one in stock?"]

        # what was stored, read on B: the visitor's message (stored by A) and both answers, once each
        stored = p.api.get(f"/accounts/{p.account_id}/conversations/{conversation}/get").json()["messages"]
        assert [(m["type"], m["text"]) for m in stored if m["type"] in ("visitor", "agent")] == [
            ("visitor", "Is the blue one in stock?"), ("agent", "Yes, two left."), ("agent", "Shall I reserve one?")]

        # the browser never spoke to B: everything crossed between the processes
        b_port = urlsplit(p.b.url).port
        assert not [u for u in v.requests if urlsplit(u).port == b_port]
        assert v.errors == [] and v.elsewhere == []
    finally:
        v.close()
        agent.close()
