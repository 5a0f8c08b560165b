"""What hooks are sent (outbox/events.py, outbox/stats.py), on both databases: the chat's changes,
made by the real chat service (the visitor's side, as its connections make them) and the partner
API (the agents' side), enqueue a conversation-export and webhook events in their transaction;
the hourly domain-stats-report is made once per hook and hour. The real worker delivers them to a
real local receiver and both signatures are checked."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook
from test_outbox import Receiver

from conftest import client_for, new_key, serving
from opensupp.app import create_app
from opensupp.chat import service as chat
from opensupp.chat.models import Conversation, Message
from opensupp.chat.protocol import new_vid
from opensupp.config import Settings
from opensupp.db import open_database
from opensupp.outbox import service as outbox
from opensupp.outbox.events import channel
from opensupp.outbox.sending import parse_networks
from opensupp.outbox.stats import GRACE, HOUR, StatsReport, domain, due_hours
from opensupp.outbox.worker import Worker
from opensupp.timeutil import now

pytestmark = pytest.mark.anyio
LOOPBACK = parse_networks("127.0.0.1/32")
T0 = 1_800_000_000  # 2027-01-15T08:00:00Z, an hour's start
ALL_EVENTS = ["conversation.opened", "conversation.closed", "conversation.rated", "conversation.agent_joined",
              "conversation.agent_replied", "conversation.contact_replied", "offline_message.created"]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app's own worker and ticker off: the tests run theirs."""
    return Settings(database_url=database_url, key_cache_seconds=0, db_pool_size=25, outbox_worker=False)


@pytest.fixture
async def receiver() -> Any:
    r = Receiver()
    async with serving(r, lifespan="off") as port:
        r.url = f"http://127.0.0.1:{port}/in"  # type: ignore[attr-defined]
        yield r


class Partner:
    """A partner's API client, and the accounts, users, triggers and hooks it makes."""

    def __init__(self, app: Any, api: Any) -> None:
        self.app, self.api = app, api
        self.hook_ids: list[int] = []

    async def account(self) -> dict[str, Any]:
        return (await self.api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()

    async def user(self, aid: str, nickname: str = "Smith") -> str:
        body = {"email": f"{secrets.token_hex(5)}@acme.example", "password": "secret-pass",
                "fullname": "Agent Smith", "nickname": nickname}
        return (await self.api.post(f"/accounts/{aid}/users/create", json=body)).json()["id"]

    async def trigger(self, aid: str, name: str) -> int:
        body = {"name": name, "actions": [{"name": "message", "agent_nick": "Robo", "message": "Need help?"}]}
        return int((await self.api.post(f"/accounts/{aid}/triggers/create", json=body)).json()["id"])

    async def hook(self, aid: str, name: str, url: str, events: list[str] | None = None,
                   active: bool = True) -> dict[str, Any]:
        """A hook made through the API, then pointed at ``url`` in SQL (the API refuses loopback URLs)."""
        config: dict[str, Any] = {"url": "https://example.com/h", **({"events": events} if events else {})}
        made = await self.api.post(f"/accounts/{aid}/hooks/create", json={"name": name, "config": config,
                                                                          "active": active})
        assert made.status_code == 200, made.text
        hook = made.json()
        self.hook_ids.append(int(hook["id"]))
        async with self.app.db.transaction() as session:
            await session.execute("UPDATE hooks SET config = $1 WHERE id = $2",
                                  orjson.dumps({**hook["config"], "url": url}).decode(), int(hook["id"]))
        return hook


@pytest.fixture
async def partner(app: Any) -> Any:
    async with client_for(app, await new_key(app)) as api:
        made = Partner(app, api)
        yield made
    async with app.db.transaction() as session:  # with their deliveries: no other test's worker or ticker sees them
        for hook_id in made.hook_ids:
            await session.execute("DELETE FROM hooks WHERE id = $1", hook_id)


async def connect(app: Any, aid: str, name: str = "Ann", url: str = "https://shop.example/pricing",
                  at: int = T0, **details: Any) -> Any:
    """A new visitor connects to the account and opens ``url`` at ``at``."""
    async with app.db.transaction() as session:
        visitor, _ = await chat.connect_visitor(session, account_id=int(aid), vid=new_vid(),
                                                details={"name": name, **details}, now=at)
        await chat.record_page_view(session, account_id=int(aid), visitor_id=visitor.id, url=url,
                                    title="Pricing", now=at)
    return visitor


async def page(app: Any, visitor: Any, url: str, at: int) -> None:
    async with app.db.transaction() as session:
        await chat.record_page_view(session, account_id=visitor.account_id, visitor_id=visitor.id, url=url, now=at)


async def call(app: Any, fn: Any, **kw: Any) -> Any:
    async with app.db.transaction() as session:
        return await fn(session, **kw)


async def deliveries(app: Any, hook: dict[str, Any]) -> list[Any]:
    async with app.db.read() as session:
        found, _ = await outbox.list_deliveries(session, account_id=int(hook_account(hook)), hook_id=int(hook["id"]),
                                                after=0, limit=1000)
    return found


def hook_account(hook: dict[str, Any]) -> str:
    return hook["_aid"]


async def deliver(app: Any) -> None:
    worker = Worker(app.db, networks=LOOPBACK, schedule=(3600,))
    while await worker.run_once():
        pass


async def received(app: Any, r: Receiver, hook: dict[str, Any]) -> list[dict[str, Any]]:
    """The bodies the receiver got for ``hook``, in the order enqueued, each checked against
    both of its signatures (X-Smartsupp-Hmac and the Standard Webhooks headers)."""
    secret = hook["config"]["secret"]
    by_id = {headers["webhook-id"]: (headers, body) for headers, body in r.requests}
    bodies = []
    for delivery in await deliveries(app, hook):
        headers, body = by_id[delivery.webhook_id]
        assert headers["x-smartsupp-hmac"] == hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        bodies.append(Webhook(secret).verify(body, headers))
    return bodies


async def hooks_of(partner: Partner, aid: str, url: str, **webhook: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    export = await partner.hook(aid, "conversation-export", url)
    hook = await partner.hook(aid, "webhook", url, **webhook)
    export["_aid"] = hook["_aid"] = aid
    return export, hook


# --------------------------------------------------------------------------- conversations


async def test_an_answered_triggered_chat_is_exported_and_each_step_is_a_webhook_event(app, partner, receiver):
    t0 = now() - 100  # the partner API's close is at the real time, after the rest
    account = await partner.account()
    aid = account["id"]
    export_hook, webhook = await hooks_of(partner, aid, receiver.url)
    user_id = await partner.user(aid, nickname="Smith")
    trigger_id = await partner.trigger(aid, "Pricing help")
    visitor = await connect(partner.app, aid, at=t0, email="ann@acme.example", referrer="https://search.example/",
                            variables={"plan": {"label": "Plan", "value": "pro"}})
    await page(app, visitor, "https://shop.example/checkout", t0 + 5)
    posted = await call(app, chat.post_trigger_message, account_id=int(aid), visitor_id=visitor.id,
                        trigger_id=trigger_id, agent_nick="Robo", text="Need help?", now=t0 + 10)
    cid = posted.conversation.id
    await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=visitor.id, text="Yes, the price?",
               now=t0 + 20)
    await call(app, chat.post_agent_message, account_id=int(aid), conversation_id=cid, user_id=int(user_id),
               text="It is 10 EUR.", now=t0 + 35)  # 15 s after the visitor's first message
    await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=visitor.id, text="And VAT?",
               now=t0 + 40)
    answered = await partner.api.post(f"/accounts/{aid}/conversations/{cid}/messages",
                                      json={"userId": user_id, "text": "Included."})  # the partner API's path
    assert answered.status_code == 200, answered.text
    async with app.db.transaction() as session:  # the API wrote at the real time: put it 6 s after the question
        await session.execute("UPDATE messages SET created_at = $1 WHERE id = $2", t0 + 46,
                              int(answered.json()["message"]["id"]))
    closed = await partner.api.post(f"/accounts/{aid}/conversations/{cid}/close")
    assert closed.status_code == 200, closed.text
    close_at = (await call(app, chat.find_conversation, account_id=int(aid), conversation_id=cid)).closed_at
    await deliver(app)

    [export] = await received(app, receiver, export_hook)
    assert (export["accountId"], export["beginAt"], export["endAt"]) == (int(aid), (t0 + 10) * 1000, close_at * 1000)
    assert export["channel"] == {
        "id": cid, "isChat": True, "isMissed": False, "isTriggered": True, "isOffline": False, "isCompleted": True,
        "isDropped": False, "duration": close_at - (t0 + 10), "avgResponse": (15 + 6) // 2, "firstResponse": 15,
        "messagesCount": 5, "wordsCount": 2 + 3 + 4 + 2 + 1, "rating": None, "ratingDesc": None,
    }
    assert export["visitor"] == {
        "id": visitor.id, "name": "Ann", "email": "ann@acme.example", "note": None, "group": None, "ipAddress": None,
        "city": None, "countryCode": None, "country": None, "userAgent": None, "platform": None,
        "referer": "https://search.example/", "variables": {"plan": {"label": "Plan", "value": "pro"}},
    }
    assert export["paths"] == [{"url": "https://shop.example/pricing", "title": "Pricing"},
                               {"url": "https://shop.example/checkout", "title": ""}]
    assert [(m["type"], m["name"], m["from"], m["content"], m["triggeredBy"]) for m in export["messages"]] == [
        ("agent", "Robo", "system", "Need help?", "Pricing help"),
        ("visitor", "Ann", f"visitor:{visitor.vid}", "Yes, the price?", None),
        ("agent", "Smith", f"agent:{user_id}", "It is 10 EUR.", None),
        ("visitor", "Ann", f"visitor:{visitor.vid}", "And VAT?", None),
        ("agent", "Smith", f"agent:{user_id}", "Included.", None),
        ("system", "", "system", "close.agentClose", None),
    ]
    assert [m["sentAt"] for m in export["messages"][:4]] == [(t0 + t) * 1000 for t in (10, 20, 35, 40)]

    events = await received(app, receiver, webhook)
    assert [e["event"] for e in events] == [
        "conversation.opened", "conversation.contact_replied", "conversation.agent_joined",
        "conversation.agent_replied", "conversation.contact_replied", "conversation.agent_replied",
        "conversation.closed"]
    assert all(e["type"] == "event_callback" and e["account_id"] == int(aid) for e in events)
    assert all(e["data"]["conversation"]["id"] == str(cid) and e["data"]["visitor"]["vid"] == visitor.vid
               for e in events)
    opened, replied, joined, agent_replied, _, _, closed_event = events
    assert opened["data"]["openedBy"] == "trigger"
    assert replied["data"]["message"]["text"] == "Yes, the price?" and replied["data"]["message"]["type"] == "visitor"
    assert joined["data"]["agent"] == {"id": user_id, "nickname": "Smith"}
    assert agent_replied["data"]["message"]["text"] == "It is 10 EUR."
    assert agent_replied["data"]["agent"] == {"id": user_id, "nickname": "Smith"}
    assert closed_event["data"]["closedBy"] == "agent"
    assert closed_event["data"]["conversation"]["status"] == "closed"
    assert closed_event["data"]["conversation"]["closeType"] == "agent_close"


async def test_a_chat_whose_last_question_got_no_answer_is_missed_and_a_rating_is_sent(app, partner, receiver):
    account = await partner.account()
    aid = account["id"]
    export_hook, webhook = await hooks_of(partner, aid, receiver.url)
    user_id = int(await partner.user(aid))
    visitor = await connect(app, aid)
    posted = await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=visitor.id, text="Hi",
                        now=T0 + 1)
    cid = posted.conversation.id
    await call(app, chat.post_agent_message, account_id=int(aid), conversation_id=cid, user_id=user_id,
               text="Hello!", now=T0 + 9)
    await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=visitor.id, text="Are you there?",
               now=T0 + 30)
    await call(app, chat.rate_conversation, account_id=int(aid), conversation_id=cid, value=2, text="slow",
               visitor_id=visitor.id)
    await call(app, chat.close_conversation, account_id=int(aid), conversation_id=cid, by="visitor",
               visitor_id=visitor.id, now=T0 + 90)
    # a second visitor writes and leaves: nobody ever answered
    lonely = await connect(app, aid, name="")
    unanswered = await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=lonely.id, text="Hello?",
                            now=T0 + 100)
    await call(app, chat.close_conversation, account_id=int(aid), conversation_id=unanswered.conversation.id,
               by="visitor", now=T0 + 160)
    await deliver(app)

    first, second = await received(app, receiver, export_hook)
    assert {k: first["channel"][k] for k in ("isChat", "isMissed", "isCompleted", "isTriggered", "firstResponse",
                                             "avgResponse", "duration", "rating", "ratingDesc")} == {
        "isChat": True, "isMissed": True, "isCompleted": False, "isTriggered": False, "firstResponse": 8,
        "avgResponse": 8, "duration": 89, "rating": 2, "ratingDesc": "slow"}
    assert first["messages"][-1] == {"type": "system", "name": "Ann", "from": "system",
                                     "content": "close.visitorClose", "sentAt": (T0 + 90) * 1000, "triggeredBy": None}
    assert {k: second["channel"][k] for k in ("isChat", "isMissed", "isCompleted", "firstResponse", "avgResponse",
                                              "messagesCount", "wordsCount", "rating")} == {
        "isChat": False, "isMissed": True, "isCompleted": False, "firstResponse": None, "avgResponse": None,
        "messagesCount": 1, "wordsCount": 1, "rating": None}
    assert second["visitor"]["name"] is None
    events = await received(app, receiver, webhook)
    [rated] = [e for e in events if e["event"] == "conversation.rated"]
    assert rated["data"]["rating"] == {"value": 2, "text": "slow"}
    assert rated["data"]["conversation"]["rating"] == {"value": 2, "text": "slow"}
    assert [e["data"]["closedBy"] for e in events if e["event"] == "conversation.closed"] == ["visitor", "visitor"]
    assert [e["data"]["openedBy"] for e in events if e["event"] == "conversation.opened"] == ["visitor", "visitor"]


async def test_an_offline_message_is_exported_as_offline_and_is_a_webhook_event(app, partner, receiver):
    account = await partner.account()
    aid = account["id"]
    export_hook, webhook = await hooks_of(partner, aid, receiver.url)
    visitor = await connect(app, aid, name="")
    await call(app, chat.store_offline_message, account_id=int(aid), visitor_id=visitor.id, name="Bob",
               email="bob@acme.example", text="Call me back please", client_id="off-1", now=T0 + 5)
    again = await call(app, chat.store_offline_message, account_id=int(aid), visitor_id=visitor.id, name="Bob",
                       email="bob@acme.example", text="Call me back please", client_id="off-1", now=T0 + 6)
    assert not again.created  # the form's retry: nothing new to send
    await deliver(app)
    [export] = await received(app, receiver, export_hook)
    assert (export["beginAt"], export["endAt"]) == ((T0 + 5) * 1000, (T0 + 5) * 1000)
    assert {k: export["channel"][k] for k in ("isOffline", "isChat", "isMissed", "isCompleted", "messagesCount")} == {
        "isOffline": True, "isChat": False, "isMissed": False, "isCompleted": False, "messagesCount": 1}
    assert (export["visitor"]["name"], export["visitor"]["email"]) == ("Bob", "bob@acme.example")
    assert [(m["type"], m["content"]) for m in export["messages"]] == [("visitor", "Call me back please")]
    [event] = await received(app, receiver, webhook)  # no conversation.opened: an offline message is its own event
    assert event["event"] == "offline_message.created"
    assert event["data"]["message"]["text"] == "Call me back please"
    assert event["data"]["conversation"]["offline"] is True
    assert (event["data"]["visitor"]["name"], event["data"]["visitor"]["email"]) == ("Bob", "bob@acme.example")


async def test_only_the_active_hooks_of_the_account_get_the_events_they_subscribed(app, partner):
    account, other = await partner.account(), await partner.account()
    aid = account["id"]
    url = "http://127.0.0.1:9/in"
    closed_only = await partner.hook(aid, "webhook", url, events=["conversation.closed"])
    asleep = [await partner.hook(aid, "webhook", url, active=False),
              await partner.hook(aid, "conversation-export", url, active=False)]
    theirs = [await partner.hook(other["id"], "webhook", url),
              await partner.hook(other["id"], "conversation-export", url)]
    for hook in (closed_only, *asleep):
        hook["_aid"] = aid
    for hook in theirs:
        hook["_aid"] = other["id"]
    user_id = int(await partner.user(aid))
    visitor = await connect(app, aid)
    posted = await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=visitor.id, text="Hi")
    cid = posted.conversation.id
    await call(app, chat.post_agent_message, account_id=int(aid), conversation_id=cid, user_id=user_id, text="Yes?")
    await call(app, chat.rate_conversation, account_id=int(aid), conversation_id=cid, value=5)
    await call(app, chat.close_conversation, account_id=int(aid), conversation_id=cid, by="agent")
    assert [(d.event, orjson.loads(d.payload)["event"]) for d in await deliveries(app, closed_only)] == [
        ("conversation.closed", "conversation.closed")]
    for hook in (*asleep, *theirs):
        assert await deliveries(app, hook) == [], hook["name"]


async def test_an_agent_joins_by_writing_first_or_by_an_assignment_to_another(app, partner):
    account = await partner.account()
    aid = account["id"]
    hook = await partner.hook(aid, "webhook", "http://127.0.0.1:9/in", events=[
        "conversation.opened", "conversation.agent_joined", "conversation.agent_replied"])
    hook["_aid"] = aid
    smith, jones = int(await partner.user(aid, "Smith")), int(await partner.user(aid, "Jones"))
    visitor = await connect(app, aid)
    posted = await call(app, chat.post_agent_message_to_visitor, account_id=int(aid), visitor_id=visitor.id,
                        user_id=smith, text="Can I help?")  # a proactive chat: the agent opens it
    cid = posted.conversation.id
    await call(app, chat.post_agent_message, account_id=int(aid), conversation_id=cid, user_id=smith, text="Hello?")
    for user_id in (jones, jones, None, smith):  # to Jones; Jones again and nobody: no one joins; Smith back
        await call(app, chat.assign_conversation, account_id=int(aid), conversation_id=cid, user_id=user_id)
    events = [orjson.loads(d.payload) for d in await deliveries(app, hook)]
    assert [(e["event"], e["data"].get("openedBy") or e["data"]["agent"]["nickname"]) for e in events] == [
        ("conversation.opened", "agent"), ("conversation.agent_joined", "Smith"),
        ("conversation.agent_replied", "Smith"), ("conversation.agent_replied", "Smith"),
        ("conversation.agent_joined", "Jones"), ("conversation.agent_joined", "Smith")]
    assert events[4]["data"]["agent"]["id"] == str(jones)
    assert events[4]["data"]["conversation"]["assignedUserId"] == str(jones)


async def test_a_change_that_rolls_back_enqueues_nothing(app, partner):
    account = await partner.account()
    aid = account["id"]
    export_hook, webhook = await hooks_of(partner, aid, "http://127.0.0.1:9/in")
    visitor = await connect(app, aid)
    with pytest.raises(RuntimeError):
        async with app.db.transaction() as session:
            posted = await chat.post_visitor_message(session, account_id=int(aid), visitor_id=visitor.id, text="Hi")
            await chat.close_conversation(session, account_id=int(aid), conversation_id=posted.conversation.id,
                                          by="visitor")
            assert len(await deliveries_in(session, webhook)) == 3  # opened, replied, closed: in this transaction
            raise RuntimeError("the change failed")
    assert await deliveries(app, export_hook) == [] and await deliveries(app, webhook) == []


async def deliveries_in(session: Any, hook: dict[str, Any]) -> list[Any]:
    found, _ = await outbox.list_deliveries(session, account_id=int(hook["_aid"]), hook_id=int(hook["id"]), after=0,
                                            limit=100)
    return found


# --------------------------------------------------------------------------- the hourly report


async def stats_hook(partner: Partner, url: str, created_at: int) -> dict[str, Any]:
    account = await partner.account()
    hook = await partner.hook(account["id"], "domain-stats-report", url)
    hook["_aid"] = account["id"]
    async with partner.app.db.transaction() as session:  # made at the test's time, not the real one
        await session.execute("UPDATE hooks SET created_at = $1 WHERE id = $2", created_at, int(hook["id"]))
    return hook


async def test_the_hourly_report_counts_the_last_hour_per_domain(app, partner, receiver):
    h = T0 + 10 * HOUR
    hook = await stats_hook(partner, receiver.url, created_at=h)
    aid = hook["_aid"]
    trigger_id = await partner.trigger(aid, "Hi")
    ann = await connect(app, aid, url="https://shop.example/", at=h + 10)
    await page(app, ann, "https://shop.example/cart", h + 20)  # a second page: still one visit
    bob = await connect(app, aid, name="Bob", url="https://shop.example/", at=h + 30)
    await page(app, bob, "https://blog.example/post", h + 40)
    cyd = await connect(app, aid, name="Cyd", url="https://blog.example/", at=h - 60)  # the hour before
    await page(app, ann, "https://shop.example/late", h + HOUR)  # the next hour
    await call(app, chat.post_trigger_message, account_id=int(aid), visitor_id=ann.id, trigger_id=trigger_id,
               agent_nick="Robo", text="Help?", now=h + 100)
    await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=ann.id, text="Yes", now=h + 110)
    await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=bob.id, text="Hi", now=h + 200)
    await call(app, chat.post_trigger_message, account_id=int(aid), visitor_id=cyd.id, trigger_id=trigger_id,
               agent_nick="Robo", text="Help?", now=h + 300)  # unanswered: no chat
    ticker = StatsReport(app.db, clock=lambda: h + HOUR + GRACE)
    assert await ticker.run_once() >= 1
    await deliver(app)
    [report] = await received(app, receiver, hook)
    assert report == {"domains": {
        "shop.example": {"visits": 2, "conversations": 1, "autoMessages": 1, "autoMessagesReply": 1},
        "blog.example": {"visits": 1, "conversations": 1, "autoMessages": 1, "autoMessagesReply": 0},
    }}
    [delivery] = await deliveries(app, hook)
    assert (delivery.event, delivery.webhook_id) == ("domain-stats-report", f"msg_stats_{hook['id']}_{h}")


async def test_two_tickers_in_the_same_hour_enqueue_the_report_once(app, partner, database_url):
    h = T0 + 20 * HOUR
    hook = await stats_hook(partner, "http://127.0.0.1:9/in", created_at=h - HOUR)
    pools = [open_database(database_url, pool_size=2) for _ in range(2)]  # as two server processes have
    for pool in pools:
        await pool.open()
    try:
        tickers = [StatsReport(pool, clock=lambda: h + GRACE) for pool in pools]
        await asyncio.gather(*(t.run_once() for t in tickers))
        await asyncio.gather(*(StatsReport(pool, clock=lambda: h + 90).run_once() for pool in pools))  # restarted
        assert [d.webhook_id for d in await deliveries(app, hook)] == [f"msg_stats_{hook['id']}_{h - HOUR}"]
    finally:
        for pool in pools:
            await pool.close()
    assert await tickers[0].run_once() == 0  # later in the hour: nothing is read (its database is closed)


async def test_missed_hours_are_caught_up_the_last_24_at_most(app, partner):
    h = T0 + 100 * HOUR
    hook = await stats_hook(partner, "http://127.0.0.1:9/in", created_at=h - 1000 * HOUR)
    t = h + GRACE
    ticker = StatsReport(app.db, clock=lambda: t)
    await ticker.run_once()
    hours = [int(d.webhook_id.rsplit("_", 1)[1]) for d in await deliveries(app, hook)]
    assert hours == list(range(h - 24 * HOUR, h, HOUR))
    t = h + 5 * HOUR + 30 * 60  # down for five hours, back mid-hour
    await ticker.run_once()
    hours = [int(d.webhook_id.rsplit("_", 1)[1]) for d in await deliveries(app, hook)]
    assert hours == list(range(h - 24 * HOUR, h + 5 * HOUR, HOUR))  # each hour once
    assert await ticker.run_once() == 0


async def test_the_server_ticks_the_report_next_to_the_worker(database_url):
    with_worker = create_app(Settings(database_url=database_url))
    without = create_app(Settings(database_url=database_url, outbox_worker=False))
    assert "StatsReport.loop" in [job.__qualname__ for job in with_worker.core.background]
    assert "StatsReport.loop" not in [job.__qualname__ for job in without.core.background]


def message(kind: str, at: int, text: str = "a b") -> Message:
    return Message(0, 1, 1, kind, None, None, None, text, None, at)


def conversation(status: str = "closed", offline: bool = False) -> Conversation:
    return Conversation(1, 1, 1, status, offline, None, None, "", None, 0, 0, None, 0, 0)


@pytest.mark.parametrize(("kinds", "status", "offline", "expected"), [
    # (isChat, isMissed, isCompleted, firstResponse, avgResponse)
    ("v0 a10 v20 a24", "closed", False, (True, False, True, 10, 7)),
    ("v0 v5 a10", "closed", False, (True, False, True, 10, 10)),  # timed from the first unanswered message
    ("v0 a10 v20", "closed", False, (True, True, False, 10, 10)),  # the last question got no answer
    ("t0 v5 s9", "closed", False, (False, True, False, None, None)),  # a trigger's message is no answer
    ("t0 s9", "closed", False, (False, False, False, None, None)),  # nobody wrote: neither missed nor completed
    ("v0 a10", "open", False, (True, False, False, 10, 10)),  # not closed: not completed
    ("v0", "pending", True, (False, False, False, None, None)),  # an offline message is offline, not missed
])
def test_the_exports_metrics(kinds, status, offline, expected):
    kind = {"v": "visitor", "a": "agent", "t": "trigger", "s": "system"}
    messages = [message(kind[k[0]], int(k[1:])) for k in kinds.split()]
    got = channel(conversation(status, offline), messages, end=30)
    assert (got["isChat"], got["isMissed"], got["isCompleted"], got["firstResponse"], got["avgResponse"]) == expected
    assert got["messagesCount"] == len([m for m in messages if m.kind != "system"])
    assert got["wordsCount"] == 2 * got["messagesCount"] and got["duration"] == 30


@pytest.mark.parametrize(("hour", "created_at", "expected"), [
    (10 * HOUR, 0, list(range(0, 10 * HOUR, HOUR))),  # all missed hours, within the bound
    (30 * HOUR, 0, list(range(6 * HOUR, 30 * HOUR, HOUR))),  # the last 24 at most
    (10 * HOUR, 9 * HOUR + 1800, [9 * HOUR]),  # made mid-hour: that hour, not the ones before
    (10 * HOUR, 10 * HOUR, []),  # made as the hour began: nothing yet
])
def test_the_hours_due(hour, created_at, expected):
    assert due_hours(hour, created_at) == expected


def test_a_domain_is_the_host_of_the_url():
    assert [domain(u) for u in ("https://Shop.Example:8443/a?b", "http://[::1]/", "/relative", "", "http://[x")] == [
        "shop.example", "::1", None, None, None]


async def test_a_very_long_conversation_is_exported_with_its_last_thousand_messages(app, partner, receiver):
    account = await partner.account()
    aid = account["id"]
    export_hook, _ = await hooks_of(partner, aid, receiver.url)
    visitor = await connect(app, aid)
    posted = await call(app, chat.post_visitor_message, account_id=int(aid), visitor_id=visitor.id, text="first",
                        now=T0)
    cid = posted.conversation.id
    async with app.db.transaction() as session:  # a chat of 1,200 messages, stored as the service stores them
        await session.executemany(
            "INSERT INTO messages (account_id, conversation_id, kind, text, created_at) VALUES ($1, $2, $3, $4, $5)",
            [(int(aid), cid, "visitor", f"line {n}", T0 + n) for n in range(1, 1200)])
    await call(app, chat.close_conversation, account_id=int(aid), conversation_id=cid, by="visitor",
               visitor_id=visitor.id, now=T0 + 2000)
    await deliver(app)
    [export] = await received(app, receiver, export_hook)
    assert len(export["messages"]) == 1000 and export["channel"]["messagesCount"] == 999  # the close is no message
    assert export["messages"][0]["content"] == "line 201" and export["messages"][-1]["content"] == "close.visitorClose"
