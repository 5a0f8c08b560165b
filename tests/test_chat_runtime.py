"""The chat runtime end to end, on both databases: the server as `opensupp serve` runs it
(create_app under uvicorn), its transport over the database (chat/core.py), a visitor and an
agent on real websockets, the partner API beside them. What a partner's visitor and agent rely
on: messages both ways, stored and readable through the API; the API's send and close reaching
the box; nothing lost or doubled across a cut socket; office hours and presence deciding the
online state and the offline form; triggers firing with the visitor's live context."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import test_chat_transport
from websockets.asyncio.client import connect

from conftest import new_key, serving
from opensupp.app import create_app
from opensupp.chat import protocol as p
from opensupp.config import Settings

pytestmark = pytest.mark.anyio

SECRET = "runtime-test-" + "k" * 40
CLOSED_HOURS = {"active": True, "days": [], "timezone": 0, "config": []}


class Client(test_chat_transport.Client):
    """The transport tests' client (frames kept while looking for one), and the messages it kept."""

    def messages(self) -> list[dict[str, Any]]:
        return [f["message"] for f in self.seen if f["type"] == "chat.message_received"]


class Runtime:
    """A served app, a partner, one of its accounts and an agent (a user of the account)."""

    def __init__(self, url: str, api: httpx.AsyncClient, account: dict[str, Any], user_id: int,
                 app: Any = None) -> None:
        self.app = app
        self.url = url
        self.ws_url = url.replace("http", "ws", 1)
        self.api = api
        self.account = account
        self.aid = int(account["id"])
        self.user_id = user_id

    @contextlib.asynccontextmanager
    async def visitor(self, token: str | None = None, after: int | None = None,
                      page: str = "https://shop.example/") -> AsyncIterator[tuple[Client, dict[str, Any]]]:
        async with connect(f"{self.ws_url}/chat/ws/visitor?key={self.account['accountKey']}",
                           origin="https://shop.example") as ws:  # type: ignore[arg-type]
            client = Client(ws)
            ack = await client.call("visitor.connect", token=token, after=after, pageUrl=page, pageTitle="Shop")
            assert ack["type"] == "ack", ack
            yield client, ack["data"]

    @contextlib.asynccontextmanager
    async def agent(self, status: str = "online") -> AsyncIterator[tuple[Client, dict[str, Any]]]:
        async with connect(f"{self.ws_url}/chat/ws/agent") as ws:
            client = Client(ws)
            ack = await client.call("agent.connect", token=p.agent_token(SECRET, self.aid, self.user_id),
                                    status=status)
            assert ack["type"] == "ack", ack
            yield client, ack["data"]


@pytest.fixture
async def runtime(database_url: str) -> AsyncIterator[Runtime]:
    settings = Settings(database_url=database_url, key_cache_seconds=0, secret_key=SECRET)
    app = create_app(settings)
    async with serving(app) as port:
        url = f"http://127.0.0.1:{port}"
        key = await new_key(app)
        async with httpx.AsyncClient(base_url=url, headers={"apiKey": key}, timeout=20) as api:
            account = (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()
            user = (await api.post(f"/accounts/{account['id']}/users/create", json={
                "email": f"{secrets.token_hex(5)}@acme.example", "password": "secret-pass", "fullname": "Anna Agent",
                "nickname": "Anna"})).json()
            yield Runtime(url, api, account, int(user["id"]), app)


async def test_a_visitor_and_an_agent_chat_and_the_partner_reads_it(runtime: Runtime):
    async with runtime.agent() as (agent, hello):
        assert hello["agent"]["nickname"] == "Anna" and hello["account"]["status"] == "online"
        async with runtime.visitor() as (visitor, connected):
            assert connected["account"]["status"] == "online" and connected["conversation"] is None
            arrived = await agent.expect("visitor.connected")
            assert arrived["visitor"]["vid"] == connected["vid"]
            assert arrived["visitor"]["pageUrl"] == "https://shop.example/"
            sent = await visitor.call("chat.message", clientId="c-1", text="Hello, <b>is</b> anyone there?")
            message, conversation = sent["data"]["message"], sent["data"]["conversation"]
            assert (message["kind"], conversation["status"]) == ("visitor", "pending")
            assert conversation["vid"] == connected["vid"]
            got = await agent.expect("chat.message_received", conversationId=conversation["id"])
            assert got["message"]["text"] == "Hello, <b>is</b> anyone there?"
            answer = await agent.call("chat.message", conversationId=conversation["id"], clientId="a-1", text="Yes!")
            assert answer["data"]["message"]["agentNick"] == "Anna"
            seen = await visitor.expect("chat.message_received", conversationId=conversation["id"],)
            while seen["message"]["kind"] != "agent":
                seen = await visitor.expect("chat.message_received", conversationId=conversation["id"])
            assert (seen["message"]["text"], seen["message"]["agentNick"]) == ("Yes!", "Anna")
            again = await visitor.call("chat.message", clientId="c-1", text="Hello, <b>is</b> anyone there?")
            assert again["data"]["message"]["id"] == message["id"]  # a retry is the first message
    r = await runtime.api.get(f"/accounts/{runtime.aid}/conversations/{conversation['id']}/get")
    assert r.status_code == 200, r.text
    stored = r.json()
    assert [(m["type"], m["text"]) for m in stored["messages"]] == [
        ("visitor", "Hello, <b>is</b> anyone there?"), ("agent", "Yes!")]
    assert stored["status"] == "open" and stored["assignedUserId"] == str(runtime.user_id)
    assert stored["visitor"]["vid"] == connected["vid"] and stored["visitor"]["lastUrl"] == "https://shop.example/"


async def test_the_partner_apis_send_and_close_reach_the_box(runtime: Runtime):
    async with runtime.visitor() as (visitor, _):
        sent = await visitor.call("chat.message", clientId="c-1", text="Anyone?")
        cid = sent["data"]["conversation"]["id"]
        r = await runtime.api.post(f"/accounts/{runtime.aid}/conversations/{cid}/messages",
                                   json={"userId": str(runtime.user_id), "text": "From the CRM"})
        assert r.status_code == 200, r.text
        got = await visitor.expect("chat.message_received", conversationId=cid, timeout=5)
        while got["message"]["kind"] != "agent":
            got = await visitor.expect("chat.message_received", conversationId=cid, timeout=5)
        assert got["message"]["text"] == "From the CRM" and got["message"]["id"] == int(r.json()["message"]["id"])
        r = await runtime.api.post(f"/accounts/{runtime.aid}/conversations/{cid}/close", json={})
        assert r.status_code == 200 and r.json()["status"] == "closed"
        closed = await visitor.expect("chat.closed", conversationId=cid, timeout=5)
        assert closed["closeType"] == "agent_close"


async def test_a_cut_socket_loses_and_doubles_nothing(runtime: Runtime):
    async with runtime.agent() as (agent, _):
        async with runtime.visitor() as (visitor, connected):
            first = await visitor.call("chat.message", clientId="c-1", text="one")
            cid = first["data"]["conversation"]["id"]
            last_seen = first["data"]["message"]["id"]
        # the socket is gone; the agent writes twice meanwhile
        for n, text in enumerate(("two", "three")):
            r = await agent.call("chat.message", conversationId=cid, clientId=f"a-{n}", text=text)
            assert r["type"] == "ack", r
        async with runtime.visitor(token=connected["token"], after=last_seen) as (visitor, again):
            assert again["vid"] == connected["vid"] and again["conversation"]["id"] == cid
            replayed = [await visitor.expect("chat.message_received") for _ in range(2)]
            assert [m["message"]["text"] for m in replayed] == ["two", "three"]
            # the message sent before the cut, retried on the new socket, is not stored twice
            retry = await visitor.call("chat.message", clientId="c-1", text="one")
            assert retry["data"]["message"]["id"] == last_seen
    stored = (await runtime.api.get(f"/accounts/{runtime.aid}/conversations/{cid}/get")).json()
    assert [m["text"] for m in stored["messages"]] == ["one", "two", "three"]


async def test_another_visitors_token_reads_nothing_of_this_one(runtime: Runtime):
    async with runtime.visitor() as (ann, ann_hello):
        await ann.call("chat.message", clientId="c-1", text="Ann's secret")
    async with runtime.visitor() as (bob, bob_hello):
        assert bob_hello["vid"] != ann_hello["vid"] and bob_hello["conversation"] is None
        await asyncio.sleep(0.3)
        assert not bob.messages()
    forged = ann_hello["token"][:-3] + ("AAA" if not ann_hello["token"].endswith("AAA") else "BBB")
    async with runtime.visitor(token=forged, after=0) as (mallory, hello):
        assert hello["vid"] != ann_hello["vid"] and hello["conversation"] is None
        await asyncio.sleep(0.3)
        assert not mallory.messages()


async def test_closed_office_hours_make_the_box_offline_and_the_offline_form_is_stored(runtime: Runtime):
    r = await runtime.api.post(f"/accounts/{runtime.aid}/officehours/update", json=CLOSED_HOURS)
    assert r.status_code == 200, r.text
    async with runtime.agent() as (agent, hello):
        assert hello["account"]["status"] == "offline"  # an agent is online, but the office is closed
        async with runtime.visitor() as (visitor, connected):
            assert connected["account"]["status"] == "offline"
            bad = await visitor.call("chat.message", clientId="c-1", text="Call me", offline=True)
            assert (bad["type"], bad["code"]) == ("server.error", "invalid_frame"), bad  # no e-mail to answer to
            update = await visitor.call("visitor.update", values={"name": "Ann", "email": "ann@shop.example"})
            assert update["type"] == "ack", update
            left = await visitor.call("chat.message", clientId="c-1", text="Call me", offline=True)
            assert left["type"] == "ack" and left["data"]["conversation"]["offline"] is True
    listed = (await runtime.api.get(f"/accounts/{runtime.aid}/conversations/")).json()["records"]
    assert [(c["offline"], c["id"]) for c in listed] == [(True, str(left["data"]["conversation"]["id"]))]
    got = (await runtime.api.get(f"/accounts/{runtime.aid}/conversations/{listed[0]['id']}/get")).json()
    assert (got["visitor"]["name"], got["visitor"]["email"], got["messages"][0]["text"]) == (
        "Ann", "ann@shop.example", "Call me")


async def test_the_box_goes_online_with_the_first_agent_and_offline_with_the_last(runtime: Runtime):
    async with runtime.visitor() as (visitor, connected):
        assert connected["account"]["status"] == "offline"  # open office hours (the default), nobody online
        async with runtime.agent():
            assert (await visitor.expect("account.updated"))["status"] == "online"
        assert (await visitor.expect("account.updated", timeout=40))["status"] == "offline"


async def make_trigger(runtime: Runtime, **fields: Any) -> dict[str, Any]:
    body = {"name": "Hi", "actions": [{"name": "message", "agent_nick": "Robo", "message": "Need a hand?"}], **fields}
    r = await runtime.api.post(f"/accounts/{runtime.aid}/triggers/create", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_an_onload_trigger_fires_once_per_visit_while_online(runtime: Runtime):
    trigger = await make_trigger(runtime, conditions=[{"name": "visitor_page_url", "value": "/pricing",
                                                       "cmp": "contains"}], only_once=False)
    async with runtime.visitor(page="https://shop.example/about") as (visitor, _):
        await asyncio.sleep(1)
        assert not visitor.messages()  # offline (no agent): nothing fires
    async with runtime.agent():
        async with runtime.visitor(page="https://shop.example/about") as (visitor, connected):
            await asyncio.sleep(1)
            assert not visitor.messages()  # the condition does not hold
        async with runtime.visitor(token=connected["token"], page="https://shop.example/pricing") as (visitor, _):
            got = await visitor.expect("chat.message_received")
            assert (got["message"]["kind"], got["message"]["agentNick"], got["message"]["text"]) == (
                "trigger", "Robo", "Need a hand?")
            assert got["message"]["triggerId"] == int(trigger["id"])
            reply = await visitor.call("chat.message", clientId="c-1", text="Yes please")
            assert reply["type"] == "ack"
        async with runtime.visitor(token=connected["token"], page="https://shop.example/pricing?x") as (visitor, _):
            await asyncio.sleep(1)  # the same visit: not again
            assert [m for m in visitor.messages() if m["kind"] == "trigger" and m["id"] != got["message"]["id"]] == []
    stored = (await runtime.api.get(f"/accounts/{runtime.aid}/conversations/{got['conversationId']}/get")).json()
    assert [(m["type"], m["triggerId"]) for m in stored["messages"]] == [
        ("trigger", trigger["id"]), ("visitor", None)]


async def test_a_delay_site_trigger_waits_across_a_page_change(runtime: Runtime):
    await make_trigger(runtime, conditions=[{"name": "delay_site", "value": 2}])
    async with runtime.agent():
        loop = asyncio.get_running_loop()
        before = loop.time()  # the visit starts between these two, as the first page connects
        async with runtime.visitor(page="https://shop.example/a") as (visitor, connected):
            after = loop.time()
            await asyncio.sleep(1)
            assert not visitor.messages()
        async with runtime.visitor(token=connected["token"], page="https://shop.example/b") as (visitor, _):
            got = await visitor.expect("chat.message_received", timeout=5)
            now = loop.time()
            assert got["message"]["kind"] == "trigger"
            # 2 s from the first page (never early), not from the second (that would be 3 s or more)
            assert now - before >= 2.0 and now - after < 2.9, (now - before, now - after)


async def test_an_onopen_trigger_fires_when_the_visitor_opens_the_box(runtime: Runtime):
    await make_trigger(runtime, event="onopen",
                       actions=[{"name": "message", "agent_nick": "Robo", "message": "Hi! Ask me anything."}])
    async with runtime.agent(), runtime.visitor() as (visitor, _):
        await asyncio.sleep(1)
        assert not visitor.messages()  # a page load is not an open
        opened = await visitor.call("chat.open")
        assert opened["type"] == "ack", opened
        got = await visitor.expect("chat.message_received", timeout=5)
        assert (got["message"]["kind"], got["message"]["text"]) == ("trigger", "Hi! Ask me anything.")
        await visitor.call("chat.open")  # opened again in the same visit: not again
        await asyncio.sleep(1)
        assert [m for m in visitor.messages() if m["kind"] == "trigger"] == []


async def test_an_only_once_onmessage_trigger_answers_the_first_message_only(runtime: Runtime):
    await make_trigger(runtime, event="onmessage", only_once=True,
                       actions=[{"name": "message", "agent_nick": "Robo", "message": "We'll be right with you."}])
    async with runtime.agent(), runtime.visitor() as (visitor, _):
        await visitor.call("chat.message", clientId="c-1", text="Hi")
        got = await visitor.expect("chat.message_received", timeout=5)
        while got["message"]["kind"] != "trigger":
            got = await visitor.expect("chat.message_received", timeout=5)
        assert got["message"]["text"] == "We'll be right with you."
        await visitor.call("chat.message", clientId="c-2", text="Hello?")
        await asyncio.sleep(1)
        assert [m for m in visitor.messages() if m["kind"] == "trigger"] == []
