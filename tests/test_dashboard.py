"""The agent dashboard over HTTP (site/dashboard.py, chat/inbox.py), on both databases, through
the real server (create_app under uvicorn): signing in by the guide's fast login, the page and
its boot data (whose agent token the agent socket accepts), the presence kept in the session
behind CSRF, and the JSON the page's script reads: the inbox, a conversation with its visitor,
the search, each scoped to the signed-in user's account."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from test_chat_runtime import Client, Runtime
from test_chat_runtime import runtime as runtime  # noqa: F401 (the fixture: a served app, an account, an agent)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.anyio

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@contextlib.asynccontextmanager
async def signed_in(runtime: Runtime, user_id: int | None = None, **query: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client (cookies kept) signed in by the guide's fast login."""
    async with httpx.AsyncClient(base_url=runtime.url, timeout=20) as web:
        r = await web.get("/sign/in", params={"apiKey": runtime.api.headers["apiKey"],
                                              "uid": str(user_id or runtime.user_id), **query}, headers=HTML)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard", r.text
        yield web


def boot_of(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="boot">(.*?)</script>', page, re.S)
    assert found, page
    return dict(json.loads(html.unescape(found.group(1)) if "&#" in found.group(1) else found.group(1)))


async def test_without_a_session_the_page_sends_to_sign_in_and_the_json_is_401(runtime):
    async with httpx.AsyncClient(base_url=runtime.url) as web:
        r = await web.get("/dashboard", headers=HTML)
        assert r.status_code == 303 and r.headers["location"] == "/sign/in?next=%2Fdashboard"
        for path in ("/dashboard/conversations", "/dashboard/conversations/1", "/dashboard/search?q=hello",
                     "/dashboard/token"):
            r = await web.get(path)
            assert r.status_code == 401 and r.json()["error"] == "Unauthorized", path


async def test_the_page_carries_a_token_the_agent_socket_accepts(runtime):
    async with signed_in(runtime, lang="cs", status="away") as web:
        r = await web.get("/dashboard", headers=HTML)
        assert r.status_code == 200
        assert "apiKey" not in str(r.url)
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert '<html lang="cs">' in r.text and "Konverzace" in r.text  # the user's language
        assert "<script>" not in r.text  # no inline script: only the boot JSON and the file
        boot = boot_of(r.text)
        assert boot["ws"] == "/chat/ws/agent" and boot["status"] == "away" and boot["lang"] == "cs"
        assert boot["user"]["id"] == runtime.user_id and boot["strings"]["dash.send"] == "Odeslat"
        assert [a["nickname"] for a in boot["agents"]] == ["Anna"]
        async with connect(f"{runtime.ws_url}{boot['ws']}") as ws:
            client = Client(ws)
            ack = await client.call("agent.connect", token=boot["token"], status=boot["status"])
            assert ack["type"] == "ack", ack
            assert ack["data"]["agent"] == {"id": runtime.user_id, "nickname": "Anna", "avatar": None,
                                            "status": "away"}
        fresh = (await web.get("/dashboard/token")).json()["token"]
        async with connect(f"{runtime.ws_url}/chat/ws/agent") as ws:
            assert (await Client(ws).call("agent.connect", token=fresh))["type"] == "ack"


async def test_the_agent_socket_ends_with_its_sign_in(runtime):
    """A signed-out session, a changed password, a deleted user: the dashboard's agent
    connections of that sign-in are closed (4001), and its token no longer connects; another
    sign-in of the same user, still valid, stays connected."""
    transport = runtime.app.core.chat
    transport.limits = dataclasses.replace(transport.limits, sweep_seconds=0.05, signin_check_seconds=0.1)

    async def connected(web: httpx.AsyncClient) -> tuple[Any, str, str]:
        page = (await web.get("/dashboard", headers=HTML)).text
        token = boot_of(page)["token"]
        ws = await connect(f"{runtime.ws_url}/chat/ws/agent")
        assert (await Client(ws).call("agent.connect", token=token))["type"] == "ack"
        return ws, token, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]

    async def ended(ws: Any, token: str) -> None:
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        async with connect(f"{runtime.ws_url}/chat/ws/agent") as again:
            assert (await Client(again).call("agent.connect", token=token))["code"] == "auth_failed"

    async with signed_in(runtime) as desk, signed_in(runtime) as phone:
        desk_ws, desk_token, desk_csrf = await connected(desk)
        phone_ws, _, _ = await connected(phone)
        assert (await desk.post("/sign/out", headers={"x-csrf-token": desk_csrf})).status_code == 303
        await ended(desk_ws, desk_token)
        await asyncio.sleep(0.3)  # several checks later, the phone's sign-in holds
        await phone_ws.send(json.dumps({"type": "ping", "ref": "p"}))
        assert json.loads(await phone_ws.recv())["ref"] == "p"
        await phone_ws.close()
    async with signed_in(runtime) as web:
        ws, token, _ = await connected(web)
        r = await runtime.api.post(f"/accounts/{runtime.aid}/users/{runtime.user_id}/update",
                                   json={"password": "a brand new one"})
        assert r.status_code == 200
        await ended(ws, token)
    async with signed_in(runtime) as web:
        ws, token, _ = await connected(web)
        assert (await runtime.api.get(f"/accounts/{runtime.aid}/users/{runtime.user_id}/delete")).status_code == 204
        await ended(ws, token)


async def test_the_status_is_kept_only_with_the_csrf_token(runtime):
    async with signed_in(runtime) as web:
        boot = boot_of((await web.get("/dashboard", headers=HTML)).text)
        assert boot["status"] == "online"
        r = await web.post("/dashboard/status", json={"status": "away"})
        assert r.status_code == 403
        r = await web.post("/dashboard/status", json={"status": "busy"}, headers={"X-CSRF-Token": boot["csrf"]})
        assert r.status_code == 400 and r.json()["error"] == "BadRequest"
        r = await web.post("/dashboard/status", content=b"x" * 5000, headers={"X-CSRF-Token": boot["csrf"]})
        assert r.status_code == 400
        r = await web.post("/dashboard/status", json={"status": "away"}, headers={"X-CSRF-Token": boot["csrf"]})
        assert r.status_code == 200 and r.json() == {"status": "away"}
        assert boot_of((await web.get("/dashboard", headers=HTML)).text)["status"] == "away"


async def test_the_inbox_a_conversation_and_the_search_are_the_accounts(runtime):
    email = f"jane-{secrets.token_hex(3)}@example.com"
    async with runtime.visitor() as (visitor, connected):
        await visitor.call("visitor.update", values={"name": "Jane <b>Doe</b>", "email": email,
                                                     "phone": "+420 123", "variables": {"plan": "gold", "vip": True}})
        sent = await visitor.call("chat.message", clientId="c-1", text="Where is my <img src=x> order?")
        conversation_id = sent["data"]["conversation"]["id"]
    async with signed_in(runtime) as web:
        inbox = (await web.get("/dashboard/conversations")).json()["conversations"]
        mine = next(c for c in inbox if c["id"] == conversation_id)
        assert mine["status"] == "pending" and mine["unreadByAgents"] == 1
        assert mine["visitor"] == {"vid": connected["vid"], "name": "Jane <b>Doe</b>", "email": email}
        assert mine["lastMessage"]["text"] == "Where is my <img src=x> order?"

        one = (await web.get(f"/dashboard/conversations/{conversation_id}")).json()
        assert one["visitor"]["phone"] == "+420 123" and one["visitor"]["variables"]["plan"]["value"] == "gold"
        assert [m["text"] for m in one["messages"]] == ["Where is my <img src=x> order?"]
        summary = (await web.get(f"/dashboard/conversations/{conversation_id}?summary=1")).json()
        assert summary["id"] == conversation_id and summary["visitor"]["email"] == email

        for q in ("MY <IMG", email.upper(), "jane <b>"):
            found = (await web.get("/dashboard/search", params={"q": q})).json()
            assert [c["id"] for c in found["conversations"]] == [conversation_id], q
        assert (await web.get("/dashboard/search", params={"q": "100%"})).json()["conversations"] == []
        for q in ("x", "y" * 101, ""):
            r = await web.get("/dashboard/search", params={"q": q})
            assert r.status_code == 400 and r.json()["error"] == "BadRequest", q
        for bad in ("0", "abc", "9" * 20):
            assert (await web.get(f"/dashboard/conversations/{bad}")).status_code == 400
        r = await web.get(f"/dashboard/conversations/{conversation_id + 10_000}")
        assert r.status_code == 404 and r.json()["error"] == "NotFound"

    # another account of the same partner: none of it is seen from there
    other = (await runtime.api.post("/accounts/create", json={"title": "Other", "lang": "en"})).json()
    user = (await runtime.api.post(f"/accounts/{other['id']}/users/create", json={
        "email": f"{secrets.token_hex(5)}@other.example", "password": "secret-pass", "fullname": "Otto",
        "nickname": "Otto"})).json()
    async with signed_in(runtime, int(user["id"])) as web:
        assert (await web.get("/dashboard/conversations")).json()["conversations"] == []
        assert (await web.get(f"/dashboard/conversations/{conversation_id}")).status_code == 404
        assert (await web.get("/dashboard/search", params={"q": email})).json()["conversations"] == []
        boot = boot_of((await web.get("/dashboard", headers=HTML)).text)
        assert [a["nickname"] for a in boot["agents"]] == ["Otto"]


async def test_the_texts_are_in_both_languages():
    from opensupp.site.i18n import HERE

    texts = json.loads((HERE / "dashboard.json").read_text("utf-8"))
    assert set(texts) == {"en", "cs"} and set(texts["en"]) == set(texts["cs"])
    assert all(value.strip() for lang in texts.values() for value in lang.values())
    sign = json.loads((HERE / "sign.json").read_text("utf-8"))
    assert not set(texts["en"]) & set(sign["en"])  # one text per key across the surfaces


async def test_an_agent_starts_a_chat_with_a_visitor_on_the_site(runtime):
    """docs/chat-protocol.md 7: ``chat.message`` with ``vid`` (the dashboard's "start a chat")."""
    async with runtime.agent() as (agent, _), runtime.visitor() as (visitor, connected):
        vid = connected["vid"]
        assert connected["conversation"] is None
        assert (await agent.expect("visitor.connected"))["visitor"]["vid"] == vid
        sent = await agent.call("chat.message", vid=vid, clientId="p-1", text="Hello! Can I help you find a bike?")
        assert sent["type"] == "ack", sent
        conversation, message = sent["data"]["conversation"], sent["data"]["message"]
        assert (conversation["status"], conversation["assignedUserId"], conversation["vid"]) == (
            "open", runtime.user_id, vid)
        assert (message["kind"], message["agentNick"]) == ("agent", "Anna")
        seen = await visitor.expect("chat.message_received", conversationId=conversation["id"])
        assert seen["message"]["text"] == "Hello! Can I help you find a bike?"
        again = await agent.call("chat.message", vid=vid, clientId="p-1", text="Hello! Can I help you find a bike?")
        assert again["data"]["message"]["id"] == message["id"]  # a retry is the first message
        reply = await visitor.call("chat.message", clientId="v-1", text="Yes please")
        assert reply["data"]["conversation"]["id"] == conversation["id"]  # the visitor answers in it

        for frame in ({"conversationId": conversation["id"], "vid": vid}, {}, {"vid": "short"}):
            refused = await agent.call("chat.message", clientId="p-2", text="x", **frame)
            assert (refused["type"], refused["code"]) == ("server.error", "invalid_frame"), frame
        refused = await agent.call("chat.message", vid="A" * 22, clientId="p-3", text="Anyone?")
        assert (refused["type"], refused["code"]) == ("server.error", "not_found")

    # a visitor of another account is not reachable from this one
    other = (await runtime.api.post("/accounts/create", json={"title": "Other", "lang": "en"})).json()
    async with connect(f"{runtime.ws_url}/chat/ws/visitor?key={other['accountKey']}") as ws:
        stranger = Client(ws)
        far = (await stranger.call("visitor.connect", token=None))["data"]["vid"]
        async with runtime.agent() as (agent, _):
            refused = await agent.call("chat.message", vid=far, clientId="p-4", text="Hi")
            assert (refused["type"], refused["code"]) == ("server.error", "not_found")


async def test_the_roll_call_names_the_visitors_already_on_the_site(runtime):
    """An agent who connects after the visitor hears who it is (the dashboard's visitors on the site now)."""
    async with runtime.visitor(page="https://shop.example/bikes") as (visitor, connected):
        await visitor.call("visitor.update", values={"name": "Petr", "lang": "cs"})
        async with runtime.agent() as (agent, _):
            listed = (await agent.expect("visitor.connected"))["visitor"]
            assert (listed["vid"], listed["name"], listed["lang"], listed["visits"]) == (
                connected["vid"], "Petr", "cs", 1)
            assert listed["pageUrl"] == "https://shop.example/bikes" and listed["online"] is True
            assert listed["domain"] == "https://shop.example"
