"""The chat transport (opensupp.chat.transport) with a real uvicorn server and real websocket
and HTTP clients: framing and validation, acks and errors, clientId de-duplication and the
replay after a cut socket, limits, heartbeat and idle timeout, the long-poll fallback, presence
and the account's online state, and two server processes relaying through PostgreSQL and Redis.

The chat service is tests/chat_memory.py's in-memory ChatCore (the real one stores in the
database; the transport only sees the interface)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from chat_memory import MemoryCore
from starlette.applications import Starlette
from test_chat_hub import REDIS_URL, _redis_or_skip
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import POSTGRES_URL
from opensupp.chat import protocol as p
from opensupp.chat.hub import Hub, InProcessHub, PostgresHub, RedisHub
from opensupp.chat.transport import ChatTransport, Limits
from opensupp.db import parse_url

pytestmark = pytest.mark.anyio

SECRET = "s" * 40
KEY = "acc-key-1"
ACCOUNT = 41
SERVED: dict[str, ChatTransport] = {}  # address -> the transport serving it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(transport: ChatTransport) -> AsyncIterator[str]:
    """A real uvicorn server (its default websocket protocol, as `opensupp serve` runs) around the transport."""
    port = free_port()
    config = uvicorn.Config(Starlette(routes=transport.routes), host="127.0.0.1", port=port, lifespan="off",
                            log_level="warning", ws="auto")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    SERVED[f"127.0.0.1:{port}"] = transport
    try:
        yield f"127.0.0.1:{port}"
    finally:
        SERVED.pop(f"127.0.0.1:{port}", None)
        await transport.close()
        server.should_exit = True
        await task


def make_core() -> MemoryCore:
    core = MemoryCore()
    core.add_account(ACCOUNT, KEY)
    core.add_user(ACCOUNT, 5, "Anna")
    core.add_user(ACCOUNT, 6, "Bob")
    core.add_account(99, "other-key")
    core.add_user(99, 7, "Eve")
    return core


@pytest.fixture
async def core() -> MemoryCore:
    return make_core()


def transport_of(core: MemoryCore, hub: Hub | None = None, **limits: Any) -> ChatTransport:
    base = {"sweep_seconds": 0.2, "connections_per_address": 10_000, "address_new_visitors": (1000.0, 1000)}
    return ChatTransport(core, SECRET, hub or InProcessHub(), Limits(**(base | limits)),  # type: ignore[arg-type]
                         presence_interval=0.3, presence_expiry=1.5)


@pytest.fixture
async def server(core: MemoryCore) -> AsyncIterator[str]:
    async with serve(transport_of(core)) as address:
        yield address


class Client:
    """A websocket client that keeps the frames it skipped while looking for one."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []
        self.refs = 0

    async def send(self, **frame: Any) -> str:
        if "ref" not in frame:
            self.refs += 1
            frame["ref"] = f"r{self.refs}"
        await self.ws.send(orjson.dumps(frame).decode())
        return str(frame["ref"])

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        return orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def expect(self, kind: str, timeout: float = 5, **fields: Any) -> dict[str, Any]:
        """The first frame of ``kind`` with these fields, from those kept or those to come."""
        for n, frame in enumerate(self.seen):
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return self.seen.pop(n)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - asyncio.get_running_loop().time()))
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame
            self.seen.append(frame)

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Sends a frame with a ref; its reply (ack or server.error)."""
        ref = await self.send(type=kind, **fields)
        while True:
            frame = await self.next()
            if frame.get("ref") == ref and frame["type"] in ("ack", "server.error", "pong"):
                return frame
            self.seen.append(frame)

    async def closed(self, timeout: float = 5) -> tuple[int | None, list[dict[str, Any]]]:
        """Reads until the server closes: (close code, frames read)."""
        frames = []
        try:
            while True:
                frames.append(await self.next(timeout))
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), frames


@contextlib.asynccontextmanager
async def visitor(address: str, key: str = KEY, origin: str | None = "https://shop.example",
                  **connect_fields: Any) -> AsyncIterator[tuple[Client, dict[str, Any]]]:
    headers = {"Origin": origin} if origin else {}
    async with connect(f"ws://{address}/chat/ws/visitor?key={key}", additional_headers=headers) as ws:
        client = Client(ws)
        reply = await client.call("visitor.connect", **connect_fields)
        yield client, reply


@contextlib.asynccontextmanager
async def agent(address: str, user_id: int = 5, account_id: int = ACCOUNT,
                **connect_fields: Any) -> AsyncIterator[tuple[Client, dict[str, Any]]]:
    async with connect(f"ws://{address}/chat/ws/agent") as ws:
        client = Client(ws)
        reply = await client.call("agent.connect", token=p.agent_token(SECRET, account_id, user_id), **connect_fields)
        yield client, reply


# --------------------------------------------------------------------------- connect and identity


async def test_a_visitor_connects_and_keeps_its_identity_with_the_token(server, core):
    async with visitor(server, name="Ann", pageUrl="https://shop.example/cart", pageTitle="Cart") as (_, reply):
        assert reply["type"] == "ack"
        data = reply["data"]
        assert data["protocol"] == 1 and len(data["vid"]) == 22
        assert data["visitor"]["name"] == "Ann" and data["visitor"]["visits"] == 1
        assert "pageUrl" not in data["visitor"]  # the visitor's own view
        assert data["conversation"] is None
        assert data["account"] == {"status": "offline", "agents": []}  # office hours open, but no agent
        vid, token = data["vid"], data["token"]
    assert core.visitors[(ACCOUNT, vid)]["domain"] == "https://shop.example"  # the Origin, recorded

    async with visitor(server, token=token) as (_, again):
        assert again["data"]["vid"] == vid and again["data"]["visitor"]["visits"] == 2

    # a forged token, or one made for another account, starts a new visitor (no error)
    forged = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    for bad in (forged, p.visitor_token(SECRET, 99, vid), "nonsense"):
        async with visitor(server, token=bad) as (_, other):
            assert other["type"] == "ack" and other["data"]["vid"] != vid


async def test_an_unknown_account_key_is_told_and_closed(server):
    async with connect(f"ws://{server}/chat/ws/visitor?key=nope") as ws:
        code, frames = await Client(ws).closed()
    assert code == p.CLOSE_UNKNOWN_ACCOUNT
    assert frames[0]["type"] == "server.error" and frames[0]["code"] == "unknown_account"


async def test_the_first_frame_must_connect(server):
    async with connect(f"ws://{server}/chat/ws/visitor?key={KEY}") as ws:
        client = Client(ws)
        await client.send(type="chat.message", clientId="c1", text="hi")
        code, frames = await client.closed()
    assert code == p.CLOSE_POLICY
    assert frames == [{"type": "server.error", "code": "not_connected", "ref": "r1",
                       "message": "The first frame is visitor.connect or agent.connect."}]


async def test_an_agent_with_a_bad_token_is_refused(server):
    for token in ("garbage", p.agent_token("another secret" * 3, ACCOUNT, 5), p.agent_token(SECRET, ACCOUNT, 404)):
        async with connect(f"ws://{server}/chat/ws/agent") as ws:
            client = Client(ws)
            await client.send(type="agent.connect", token=token)
            code, frames = await client.closed()
        assert code == p.CLOSE_AUTH
        assert frames[0]["code"] == "auth_failed"


# --------------------------------------------------------------------------- framing


async def test_bad_frames_get_errors_with_their_ref_and_the_connection_stays(server):
    async with visitor(server) as (client, _):
        await client.ws.send("not json")
        assert (await client.next())["code"] == "bad_json"
        assert (await client.call("chat.shout", text="x"))["code"] == "unknown_type"
        too_long = await client.call("chat.message", clientId="c1", text="x" * 2001)
        assert too_long["code"] == "invalid_frame" and "text" in too_long["message"]
        assert (await client.call("chat.message", clientId="has space", text="x"))["code"] == "invalid_frame"
        assert (await client.call("chat.message", text="no client id"))["code"] == "invalid_frame"
        assert (await client.call("chat.rate", value=9))["code"] == "invalid_frame"
        assert (await client.call("visitor.connect"))["code"] == "already_connected"
        assert (await client.call("ping")) == {"type": "pong", "ref": f"r{client.refs}"}
        ok = await client.call("chat.message", clientId="c2", text="  still here  ", unknownField=1)
        assert ok["type"] == "ack" and ok["data"]["message"]["text"] == "still here"


async def test_an_oversize_frame_closes_with_1009_and_a_binary_one_with_1003(server):
    async with visitor(server) as (client, _):
        await client.ws.send(orjson.dumps({"type": "ping", "pad": "x" * p.MAX_FRAME}).decode())
        assert (await client.closed())[0] == p.CLOSE_TOO_BIG
    async with visitor(server) as (client, _):
        await client.ws.send(b"\x00binary")
        assert (await client.closed())[0] == p.CLOSE_BINARY


# --------------------------------------------------------------------------- messages, acks, fan-out


async def test_a_message_is_acked_echoed_to_every_tab_and_reaches_agents_once_per_client_id(server, core):
    async with agent(server) as (anna, anna_ack), visitor(server) as (tab1, reply):
        assert anna_ack["type"] == "ack" and anna_ack["data"]["agent"]["nickname"] == "Anna"
        token = reply["data"]["token"]
        async with visitor(server, token=token) as (tab2, _):
            ack = await tab1.call("chat.message", clientId="c-1", text="Hello")
            message = ack["data"]["message"]
            assert message["kind"] == "visitor" and message["text"] == "Hello" and message["clientId"] == "c-1"
            assert ack["data"]["conversation"]["status"] == "pending"
            for client in (tab1, tab2, anna):
                got = await client.expect("chat.message_received")
                assert got == {"type": "chat.message_received", "conversationId": message["conversationId"],
                               "message": message}
            # the retry of a message whose ack was lost: acked with the first message, stored once
            retry = await tab2.call("chat.message", clientId="c-1", text="Hello")
            assert retry["data"]["message"]["id"] == message["id"]
            assert [m["text"] for m in core.messages] == ["Hello"]

            reply_ack = await anna.call("chat.message", conversationId=message["conversationId"], clientId="a-1",
                                        text="Hi, how can I help?")
            answer = reply_ack["data"]["message"]
            assert answer["kind"] == "agent" and answer["agentNick"] == "Anna" and answer["id"] > message["id"]
            for client in (tab1, tab2):
                assert (await client.expect("chat.message_received", conversationId=message["conversationId"],
                                            message=answer))


async def test_two_visitors_see_nothing_of_each_other(server):
    async with visitor(server) as (one, _), visitor(server) as (two, _):
        await one.call("chat.message", clientId="c1", text="mine")
        await one.expect("chat.message_received")
        with pytest.raises(TimeoutError):
            await two.expect("chat.message_received", timeout=0.5)


async def test_typing_read_close_and_rate_reach_the_other_side(server):
    async with agent(server) as (anna, _), visitor(server) as (guest, reply):
        vid = reply["data"]["vid"]
        posted = (await guest.call("chat.message", clientId="c1", text="Hi"))["data"]["message"]
        conversation_id = posted["conversationId"]
        await guest.send(type="chat.typing", **{"is": True}, text="Wait")
        typing = await anna.expect("chat.contact_typing")
        assert typing == {"type": "chat.contact_typing", "conversationId": conversation_id, "vid": vid,
                          "is": True, "text": "Wait"}
        assert (await anna.call("chat.typing", conversationId=conversation_id, **{"is": True}))["type"] == "ack"
        agent_typing = await guest.expect("chat.agent_typing")
        assert agent_typing["agent"] == {"id": 5, "nickname": "Anna"} and agent_typing["is"] is True
        await anna.call("chat.read", conversationId=conversation_id, lastMessageId=posted["id"])
        read = await guest.expect("chat.contact_read")
        assert read["by"] == {"type": "agent", "id": 5} and read["lastMessageId"] == posted["id"]
        assert (await anna.call("chat.assign", conversationId=conversation_id, userId=6))["type"] == "ack"
        assert (await guest.expect("chat.assigned"))["agent"]["nickname"] == "Bob"
        closed = await guest.call("chat.close")
        assert closed["data"]["conversation"]["status"] == "closed"
        for client in (guest, anna):
            got = await client.expect("chat.closed")
            assert got["closeType"] == "visitor_close" and got["conversationId"] == conversation_id
        rated = await guest.call("chat.rate", value=5, text="Great")
        assert rated["data"]["conversation"]["rating"] == {"value": 5, "text": "Great"}
        assert (await anna.expect("chat.rated"))["rating"] == {"value": 5, "text": "Great"}
        # agents' frames about conversations of other accounts: not found
        assert (await anna.call("chat.close", conversationId=conversation_id))["code"] == "not_found"
        assert (await anna.call("chat.message", conversationId=12345, clientId="x", text="?"))["code"] == "not_found"


async def test_agents_see_visitors_arrive_change_and_leave(server):
    async with agent(server) as (anna, _):
        async with visitor(server, name="Ann", pageUrl="https://shop.example/") as (guest, reply):
            vid = reply["data"]["vid"]
            arrived = await anna.expect("visitor.connected")
            assert arrived["visitor"]["vid"] == vid and arrived["visitor"]["name"] == "Ann"
            assert arrived["visitor"]["domain"] == "https://shop.example" and arrived["visitor"]["online"] is True
            await guest.call("page.view", url="https://shop.example/cart", title="Cart")
            moved = await anna.expect("visitor.updated")
            assert moved["changes"]["pageUrl"] == "https://shop.example/cart"
            await guest.call("visitor.update", values={"email": "ann@example.com", "variables": {"plan": "pro"}})
            updated = await anna.expect("visitor.updated", vid=vid)
            assert updated["changes"] == {"email": "ann@example.com", "variables": {"plan": "pro"}}
        assert (await anna.expect("visitor.disconnected")) == {"type": "visitor.disconnected", "vid": vid}

        # a second agent connecting hears of the visitors already there (the roll call)
        async with visitor(server) as (_, reply2), agent(server, user_id=6) as (bob, _):
            listed = await bob.expect("visitor.connected")
            assert listed["visitor"]["vid"] == reply2["data"]["vid"]


# --------------------------------------------------------------------------- no message lost or doubled


async def test_a_cut_socket_loses_and_doubles_nothing(server, core):
    async with agent(server) as (anna, _):
        async with visitor(server) as (guest, reply):
            token = reply["data"]["token"]
            first = (await guest.call("chat.message", clientId="c-1", text="one"))["data"]["message"]
            await guest.expect("chat.message_received")
            # the second message is sent and the socket is cut before its ack can arrive
            await guest.send(type="chat.message", clientId="c-2", text="two")
            guest.ws.transport.abort()
        conversation_id = first["conversationId"]
        # meanwhile the agent answers twice
        for n in (1, 2):
            await anna.call("chat.message", conversationId=conversation_id, clientId=f"a-{n}", text=f"answer {n}")

        # the visitor comes back with the last id it saw and re-sends its unacked message
        async with visitor(server, token=token, after=first["id"]) as (guest, reply):
            replayed = [await guest.expect("chat.message_received") for _ in range(3)]
            retry = await guest.call("chat.message", clientId="c-2", text="two")

    texts = [m["text"] for m in core.messages]
    assert texts.count("two") == 1 and len(texts) == 4
    replay_texts = [frame["message"]["text"] for frame in replayed]
    assert sorted(replay_texts) == ["answer 1", "answer 2", "two"]  # nothing up to `after`, the rest once
    ids = [frame["message"]["id"] for frame in replayed]
    assert ids == sorted(ids)  # oldest first
    assert retry["data"]["message"]["id"] in ids


async def test_a_reconnect_without_after_replays_the_open_conversation(server):
    async with visitor(server) as (guest, reply):
        for n in range(3):
            await guest.call("chat.message", clientId=f"c-{n}", text=f"m{n}")
    async with visitor(server, token=reply["data"]["token"]) as (guest, again):
        assert again["data"]["conversation"]["status"] == "pending"
        texts = [(await guest.expect("chat.message_received"))["message"]["text"] for _ in range(3)]
        assert texts == ["m0", "m1", "m2"]


# --------------------------------------------------------------------------- limits and heartbeat


async def test_message_and_frame_rate_limits(core):
    transport = transport_of(core, visitor_messages=(0.5, 3), address_messages=(100.0, 100),
                             visitor_frames=(1000, 1000))
    async with serve(transport) as address, visitor(address) as (guest, _):
        for n in range(3):
            assert (await guest.call("chat.message", clientId=f"c{n}", text="x"))["type"] == "ack"
        limited = await guest.call("chat.message", clientId="c3", text="x")
        assert limited["code"] == "rate_limited" and 0 < limited["retryAfter"] <= 2
        assert len(core.messages) == 3  # refused, not stored: the client re-sends it later

    transport = transport_of(core, visitor_frames=(1.0, 5), refused_in_a_row=5)
    async with serve(transport) as address, visitor(address) as (guest, _):
        for _ in range(30):
            with contextlib.suppress(ConnectionClosed):
                await guest.send(type="ping")
        code, frames = await guest.closed()
        assert code == p.CLOSE_POLICY
        assert any(frame.get("code") == "rate_limited" for frame in guest.seen + frames)


async def test_messages_per_address_and_connections_per_address(core):
    transport = transport_of(core, visitor_messages=(100.0, 100), address_messages=(0.1, 4))
    async with serve(transport) as address, visitor(address) as (one, _), visitor(address) as (two, _):
        codes = []
        for n in range(3):
            codes.append((await one.call("chat.message", clientId=f"a{n}", text="x"))["type"])
            codes.append((await two.call("chat.message", clientId=f"b{n}", text="x"))["type"])
        assert codes.count("ack") == 4 and codes.count("server.error") == 2

    transport = transport_of(core, connections_per_address=2)
    async with serve(transport) as address, visitor(address), visitor(address), \
            connect(f"ws://{address}/chat/ws/visitor?key={KEY}") as ws:
        assert (await Client(ws).closed())[0] == p.CLOSE_TRY_LATER


async def test_a_silent_connection_is_closed_and_pings_keep_one_open(core):
    transport = transport_of(core, idle_seconds=1.0)
    async with serve(transport) as address, visitor(address) as (quiet, _), visitor(address) as (talker, _):
        for _ in range(8):
            await asyncio.sleep(0.25)
            assert (await talker.call("ping"))["type"] == "pong"
        code, _ = await quiet.closed()
        assert code == p.CLOSE_IDLE
        assert (await talker.call("ping"))["type"] == "pong"


async def test_no_connect_frame_within_the_deadline_closes(core):
    async with serve(transport_of(core, connect_seconds=0.5)) as address, \
            connect(f"ws://{address}/chat/ws/visitor?key={KEY}") as ws:
        assert (await Client(ws).closed())[0] == p.CLOSE_POLICY


# --------------------------------------------------------------------------- presence and the online state


async def test_the_account_is_online_while_an_agent_is_online_in_office_hours(server, core):
    async with visitor(server) as (guest, reply):
        assert reply["data"]["account"]["status"] == "offline"
        async with agent(server) as (anna, _):
            assert (await guest.expect("account.updated")) == {"type": "account.updated", "status": "online"}
            changed = await guest.expect("agent.updated")
            assert changed == {"type": "agent.updated", "id": 5, "changes": {"status": "online"}}
            await anna.call("agent.update", status="away")
            assert (await guest.expect("account.updated"))["status"] == "offline"
            await anna.call("agent.update", status="online")
            assert (await guest.expect("account.updated"))["status"] == "online"
            async with visitor(server) as (_, second):
                assert second["data"]["account"] == {
                    "status": "online", "agents": [{"id": 5, "nickname": "Anna", "avatar": None, "status": "online"}]}
        assert (await guest.expect("account.updated"))["status"] == "offline"

    core.open_hours[ACCOUNT] = False  # office hours closed: offline whatever the agents
    async with agent(server), visitor(server) as (_, closed_hours):
        assert closed_hours["data"]["account"]["status"] == "offline"


# --------------------------------------------------------------------------- long-poll fallback


async def test_the_long_poll_carries_the_same_frames(server, core):
    async with httpx.AsyncClient(base_url=f"http://{server}", timeout=30) as http, agent(server) as (anna, _):
        url = f"/chat/poll/visitor?key={KEY}"
        r = await http.post(url, json={"sid": None, "frames": [
            {"type": "visitor.connect", "ref": "1", "name": "Polly"},
            {"type": "chat.message", "ref": "2", "clientId": "p-1", "text": "over http"}]})
        assert r.status_code == 200
        body = r.json()
        sid = body["sid"]
        assert sid and body["frames"][0]["type"] == "ack" and body["frames"][0]["data"]["visitor"]["name"] == "Polly"
        acks = {frame.get("ref"): frame for frame in body["frames"]}
        message = acks["2"]["data"]["message"]
        assert message["text"] == "over http"
        assert (await anna.expect("chat.message_received"))["message"] == message

        # a poll is held until something comes: the agent's answer
        poll = asyncio.create_task(http.post(url, json={"sid": sid, "frames": []}))
        await asyncio.sleep(0.3)
        assert not poll.done()
        await anna.call("chat.message", conversationId=message["conversationId"], clientId="a1", text="hello poll")
        answered = (await asyncio.wait_for(poll, 5)).json()
        assert answered["sid"] == sid
        assert any(f["type"] == "chat.message_received" and f["message"]["text"] == "hello poll"
                   for f in answered["frames"])

        # unknown session: start again (with the token and `after`: nothing lost)
        expired = (await http.post(url, json={"sid": "nope", "frames": []})).json()
        assert expired == {"sid": None, "frames": [{
            "type": "server.error", "code": "session_expired", "ref": None,
            "message": "This poll session is unknown or expired; connect again."}]}
        # bad requests are JSON errors, never 500
        assert (await http.post(url, content=b"[1,2")).status_code == 400
        assert (await http.post(url, json={"sid": None, "frames": [{}] * 17})).status_code == 400
        assert (await http.post("/chat/poll/visitor?key=nope", json={"sid": None, "frames": []})).status_code == 404
        big = (await http.post(url, content=b"{" + b" " * p.MAX_POLL_BODY + b"}"))
        assert big.status_code == 413 and big.json()["error"] == "PayloadTooLarge"
        no_connect = (await http.post(url, json={"sid": None, "frames": [{"type": "ping"}]})).json()
        assert no_connect["sid"] is None and no_connect["frames"][0]["code"] == "not_connected"


async def test_a_poll_session_expires(core):
    async with serve(transport_of(core, poll_session_seconds=0.5)) as address, \
            httpx.AsyncClient(base_url=f"http://{address}") as http:
        url = f"/chat/poll/visitor?key={KEY}"
        body = (await http.post(url, json={"sid": None, "frames": [{"type": "visitor.connect"}]})).json()
        await asyncio.sleep(1.2)
        again = (await http.post(url, json={"sid": body["sid"], "frames": [{"type": "ping", "ref": "p"}]})).json()
        assert again["sid"] is None and again["frames"][0]["code"] == "session_expired"


# --------------------------------------------------------------------------- two processes


def _hub(kind: str) -> Hub:
    if kind == "postgresql":
        return PostgresHub(parse_url(POSTGRES_URL)[1], health_interval=1.0)
    _redis_or_skip()
    return RedisHub(REDIS_URL, health_interval=1.0)


@pytest.mark.parametrize("kind", ["postgresql", "redis"])
async def test_two_processes_relay_a_conversation_and_presence_through_the_backend(kind):
    core = make_core()  # one "database" behind two server "processes", each with its own hub connection
    hub_a, hub_b = _hub(kind), _hub(kind)
    await hub_a.start()
    await hub_b.start()
    account = secrets.randbelow(10**6) + 1000
    core.add_account(account, f"key-{account}")
    core.add_user(account, 5, "Anna")
    try:
        async with serve(transport_of(core, hub_a)) as a, serve(transport_of(core, hub_b)) as b, \
                visitor(a, key=f"key-{account}") as (guest, reply):
            assert reply["data"]["account"]["status"] == "offline"
            async with agent(b, account_id=account) as (anna, _):
                # the agent on B makes the account online for the visitor on A
                assert (await guest.expect("account.updated"))["status"] == "online"
                await anna.expect("visitor.connected")  # the roll call answered from A
                sent = (await guest.call("chat.message", clientId="c1", text="from A"))["data"]["message"]
                assert (await anna.expect("chat.message_received"))["message"] == sent
                answer = await anna.call("chat.message", conversationId=sent["conversationId"], clientId="a1",
                                         text="from B")
                got = await guest.expect("chat.message_received", message=answer["data"]["message"])
                assert got["message"]["text"] == "from B"
                # a killed backend connection on A: it subscribes again by itself
                if isinstance(hub_a, PostgresHub):
                    await _terminate(hub_a)
                    await _until(lambda: hub_a.reconnects >= 1 and hub_a.connected.is_set())
                    answer = await anna.call("chat.message", conversationId=sent["conversationId"],
                                             clientId="a2", text="after the kill")
                    got = await guest.expect("chat.message_received", message=answer["data"]["message"])
            assert (await guest.expect("account.updated", timeout=5))["status"] == "offline"
    finally:
        await hub_a.close()
        await hub_b.close()


async def _terminate(hub: PostgresHub) -> None:
    import asyncpg

    conn = await asyncpg.connect(parse_url(POSTGRES_URL)[1])
    try:
        await conn.fetchval("SELECT pg_terminate_backend($1)", hub.backend_pid)
    finally:
        await conn.close()


async def _until(predicate: Any, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- mounted in the server's app


async def test_the_web_pages_mount_the_chat_routes_outside_csrf(tmp_path):
    from conftest import client_for
    from opensupp.app import create_app
    from opensupp.config import Settings

    application = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", data_dir=tmp_path))
    await application.startup()
    try:
        async with client_for(application) as http:
            # a cross-site POST without CSRF token or cookie reaches the poll endpoint: its own JSON errors
            r = await http.post("/chat/poll/visitor?key=k", content=b"not json")
            assert (r.status_code, r.json()["error"]) == (400, "BadRequest")
            assert (await http.post("/chat/poll/agent", content=b"{}")).status_code == 400
    finally:
        await application.shutdown()


async def test_chat_events_reach_the_sockets_from_outside_the_transport(server, core):
    """What the partner API does after storing an agent's message: ChatEvents on the transport's hub."""
    async with visitor(server) as (guest, reply), agent(server) as (anna, _):
        vid = reply["data"]["vid"]
        posted = (await guest.call("chat.message", clientId="c1", text="hi"))["data"]["message"]
        message, conversation = await core.post_agent_message(ACCOUNT, 5, posted["conversationId"], "via the API",
                                                              "api-1")
        transport = SERVED[server]
        await (await transport.events()).message(ACCOUNT, vid, message)
        for client in (guest, anna):
            got = await client.expect("chat.message_received", message=message)
            assert got["conversationId"] == conversation["id"]
        closed = await core.close_conversation(ACCOUNT, conversation_id=conversation["id"], user_id=5)
        await (await transport.events()).closed(ACCOUNT, vid, closed, 5)
        assert (await guest.expect("chat.closed"))["closeType"] == "agent_close"


async def test_the_roll_call_lists_each_visitor_once(server):
    async with visitor(server) as (_, one), visitor(server, token=one["data"]["token"]), \
            visitor(server) as (_, two), agent(server) as (anna, _):
        listed = [(await anna.expect("visitor.connected"))["visitor"]["vid"] for _ in range(2)]
        assert sorted(listed) == sorted([one["data"]["vid"], two["data"]["vid"]])  # two tabs: one visitor
        with pytest.raises(TimeoutError):
            await anna.expect("visitor.connected", timeout=0.5)
