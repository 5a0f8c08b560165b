"""The chat core's service (chat/service.py) on both databases, through the real app's
database: visitors by vid, visits, page views, conversations, messages
de-duplicated by client id and replayed after an id, closes, ratings, offline messages,
validation, the cascade of an account's delete and the retention purge."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, NamedTuple

import pytest

from opensupp.accounts import service as accounts
from opensupp.app import create_app
from opensupp.chat import service as chat
from opensupp.chat.protocol import new_vid
from opensupp.chat.retention import Retention
from opensupp.errors import NotFound, ValidationFailed
from opensupp.partners import service as partners
from opensupp.timeutil import now
from opensupp.users import service as users

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000


async def make_account(app):
    async with app.db.transaction() as session:
        partner_id = await partners.create_partner(session, name=f"chat-{secrets.token_hex(6)}")
        account = await accounts.create_account(session, partner_id=partner_id, title="Acme", lang="en")
    return partner_id, account


class Connected(NamedTuple):
    visitor: Any
    is_new: bool


async def connect(app, account, vid=None, details=None, now=T0):
    """The visitor ``vid`` (a new one when None) connects to the account."""
    async with app.db.transaction() as session:
        return Connected(*await chat.connect_visitor(session, account_id=account.id, vid=vid or new_vid(),
                                                     details=details or {}, now=now))


async def in_tx(app, fn, **kw):
    async with app.db.transaction() as session:
        return await fn(session, **kw)


async def test_a_visitor_keeps_its_vid_counts_visits_and_the_visits_start(app):
    _, account = await make_account(app)
    first = await connect(app, account, details={"url": "https://acme.example/", "name": "Ann"})
    assert first.is_new and first.visitor.visits == 1 and first.visitor.name == "Ann"
    assert first.visitor.visit_started_ms == T0 * 1000 and len(first.visitor.vid) == 22
    again = await connect(app, account, vid=first.visitor.vid, now=T0 + 10)
    assert not again.is_new and again.visitor.id == first.visitor.id
    assert again.visitor.visits == 1 and again.visitor.visit_started_ms == T0 * 1000  # back within 30 s: the same visit
    later = await connect(app, account, vid=first.visitor.vid, now=T0 + 10 + 30)
    assert later.visitor.visits == 2 and later.visitor.name == "Ann"
    assert later.visitor.visit_started_ms == (T0 + 40) * 1000  # a new visit: the triggers' site clock starts again


async def test_one_vid_in_two_accounts_is_two_visitors_and_a_bad_vid_is_refused(app):
    _, account = await make_account(app)
    _, other = await make_account(app)
    mine = await connect(app, account, details={"name": "Ann"})
    theirs = await connect(app, other, vid=mine.visitor.vid)
    assert theirs.is_new and theirs.visitor.id != mine.visitor.id and theirs.visitor.name == ""
    for bad in ("short", "a" * 23, "a" * 21 + "/", 12):
        with pytest.raises(ValidationFailed):
            await connect(app, account, vid=bad)
    with pytest.raises(NotFound):
        await connect(app, type(account)(0, "", "", "0" * 40, 0))


async def test_visitor_details_are_validated_and_variables_labelled(app):
    _, account = await make_account(app)
    v = (await connect(app, account)).visitor
    updated = await in_tx(app, chat.update_visitor, account_id=account.id, visitor_id=v.id, changes={
        "email": "ann@acme.example", "phone": "+420 123", "lang": "cs", "group": "vip",
        "variables": {"User_ID": "1234", "plan": {"label": "Plan", "value": "pro"}, "paid": True}})
    assert updated.group == "vip" and updated.email == "ann@acme.example"
    assert updated.variables == {"User_ID": {"label": "User_ID", "value": "1234"},
                                 "plan": {"label": "Plan", "value": "pro"}, "paid": {"label": "paid", "value": True}}
    for bad, field in (({"name": "x" * 256}, "name"), ({"email": "nope"}, "email"), ({"variables": []}, "variables"),
                       ({"variables": {f"k{i}": i for i in range(51)}}, "variables"),
                       ({"variables": {"k": "x" * 9000}}, "variables"), ({"colour": "red"}, "colour"),
                       ({"name": 5}, "name"), ({"variables": {"k": [1]}}, "variables.k")):
        with pytest.raises(ValidationFailed) as info:
            await in_tx(app, chat.update_visitor, account_id=account.id, visitor_id=v.id, changes=bad)
        assert [e.field for e in info.value.errors] == [field], bad


async def test_bad_details_at_connect_are_left_out_not_refused(app):
    """Nothing a host page sets keeps its visitor from connecting."""
    _, account = await make_account(app)
    connected = await connect(app, account, details={"name": "Ann", "email": "not an e-mail", "colour": "red",
                                                     "variables": {"k": [1]}, "title": 5})
    assert connected.is_new and connected.visitor.name == "Ann"
    assert (connected.visitor.email, connected.visitor.variables, connected.visitor.last_title) == ("", {}, "")
    assert (await connect(app, account, details=["not", "a", "mapping"])).is_new
    with pytest.raises(ValidationFailed):
        await in_tx(app, chat.update_visitor, account_id=account.id, visitor_id=connected.visitor.id, changes=[1])


async def test_page_views_are_kept_and_cut_to_size(app):
    _, account = await make_account(app)
    v = (await connect(app, account)).visitor
    view = await in_tx(app, chat.record_page_view, account_id=account.id, visitor_id=v.id,
                       url="https://acme.example/" + "a" * 3000, title="Pricing", referrer="", now=T0 + 5)
    assert len(view.url) == 2000 and view.title == "Pricing"
    again = await in_tx(app, chat.get_visitor, account_id=account.id, visitor_id=v.id)
    assert again.last_title == "Pricing" and again.last_seen_at == T0 + 5
    async with app.db.read() as session:
        assert [p.id for p in await chat.page_views_of(session, account_id=account.id, visitor_id=v.id)] == [view.id]


async def test_messages_are_deduplicated_by_client_id_and_replayed_after_an_id(app):
    partner_id, account = await make_account(app)
    async with app.db.transaction() as session:
        user = await users.create_user(session, partner_id=partner_id, account_id=account.id,
                                       email=f"a{account.id}@x.example", password_hash="x", fullname="Agent Smith",
                                       nickname="Smith")
    v = (await connect(app, account)).visitor
    first = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Hello",
                        client_id="c-1", now=T0 + 1)
    assert first.created and first.conversation.status == "pending" and first.conversation.unread_by_agents == 1
    retry = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Hello",
                        client_id="c-1", now=T0 + 2)
    assert not retry.created and retry.message == first.message and retry.conversation.unread_by_agents == 1
    cid = first.conversation.id
    reply = await in_tx(app, chat.post_agent_message, account_id=account.id, conversation_id=cid, user_id=user.id,
                        text="Hi, how can I help?", now=T0 + 3)
    assert reply.message.agent_nick == "Smith" and reply.conversation.status == "open"
    assert reply.conversation.assigned_user_id == user.id and reply.conversation.unread_by_visitor == 1
    second = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Prices?",
                         client_id="c-2", now=T0 + 4)
    assert second.conversation.id == cid and second.message.id > reply.message.id
    async with app.db.read() as session:
        everything = await chat.messages_after(session, account_id=account.id, conversation_id=cid)
        since = await chat.messages_after(session, account_id=account.id, conversation_id=cid,
                                          after_id=first.message.id, visitor_id=v.id)
    assert [m.kind for m in everything] == ["visitor", "agent", "visitor"]
    assert [m.id for m in since] == [reply.message.id, second.message.id]
    for bad in ({"after_id": -1}, {"after_id": "5"}, {"limit": 0}, {"limit": 1001}):
        with pytest.raises(ValidationFailed):
            await in_tx(app, chat.messages_after, account_id=account.id, conversation_id=cid, **bad)
    read = await in_tx(app, chat.mark_read, account_id=account.id, conversation_id=cid, by="agent")
    assert read.unread_by_agents == 0


async def test_a_message_and_its_retry_at_once_are_stored_once(app):
    """Two connections of one visitor (its retry over a new socket, on another process) send the
    first message at the same moment: one conversation, one message."""
    _, account = await make_account(app)
    v = (await connect(app, account)).visitor
    both = await asyncio.gather(*(
        in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Hi", client_id="c-1")
        for _ in range(2)))
    assert sorted(p.created for p in both) == [False, True]
    assert both[0].message == both[1].message
    assert await count(app, "conversations", account.id) == 1 and await count(app, "messages", account.id) == 1


async def test_one_visitor_cannot_touch_another_visitors_conversation(app):
    _, account = await make_account(app)
    ann, bob = (await connect(app, account)).visitor, (await connect(app, account)).visitor
    posted = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=ann.id, text="x")
    cid = posted.conversation.id
    for fn, kw in ((chat.messages_after, {}), (chat.mark_read, {"by": "visitor"}),
                   (chat.close_conversation, {"by": "visitor"}), (chat.rate_conversation, {"value": 5})):
        with pytest.raises(NotFound):
            await in_tx(app, fn, account_id=account.id, conversation_id=cid, visitor_id=bob.id, **kw)
    _, other = await make_account(app)
    with pytest.raises(NotFound):
        await in_tx(app, chat.post_visitor_message, account_id=other.id, visitor_id=ann.id, text="x")


async def test_close_rate_and_a_new_conversation_after_it(app):
    _, account = await make_account(app)
    v = (await connect(app, account)).visitor
    posted = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="x")
    cid = posted.conversation.id
    closed = await in_tx(app, chat.close_conversation, account_id=account.id, conversation_id=cid, by="visitor",
                         visitor_id=v.id, now=T0 + 9)
    assert closed.conversation.status == "closed" and closed.conversation.close_type == "visitor_close"
    assert closed.message is not None
    assert (closed.message.kind, closed.message.text) == ("system", "close.visitorClose")
    assert (await in_tx(app, chat.close_conversation, account_id=account.id, conversation_id=cid,
                        by="agent")).message is None
    assert (await in_tx(app, chat.get_visitor, account_id=account.id, visitor_id=v.id)).chats == 1
    rated = await in_tx(app, chat.rate_conversation, account_id=account.id, conversation_id=cid, value=4, text="ok")
    assert (rated.rating, rated.rating_text) == (4, "ok")
    with pytest.raises(ValidationFailed):
        await in_tx(app, chat.rate_conversation, account_id=account.id, conversation_id=cid, value=6)
    nxt = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="again")
    assert nxt.conversation.id != cid and nxt.conversation.status == "pending"


async def test_trigger_system_and_offline_messages(app):
    _, account = await make_account(app)
    v = (await connect(app, account)).visitor
    fired = await in_tx(app, chat.post_trigger_message, account_id=account.id, visitor_id=v.id, trigger_id=7,
                        agent_nick="Support", text="Hello!", client_id="trigger-7-1")
    assert (fired.message.kind, fired.message.trigger_id, fired.conversation.unread_by_visitor) == ("trigger", 7, 1)
    twice = await in_tx(app, chat.post_trigger_message, account_id=account.id, visitor_id=v.id, trigger_id=7,
                        agent_nick="Support", text="Hello!", client_id="trigger-7-1")
    assert not twice.created and twice.message.id == fired.message.id
    event = await in_tx(app, chat.post_system_message, account_id=account.id, conversation_id=fired.conversation.id,
                        text="agent.join")
    assert event.message.kind == "system" and event.conversation.unread_by_visitor == 1
    offline = await in_tx(app, chat.store_offline_message, account_id=account.id, visitor_id=v.id, name="Ann",
                          email="ann@acme.example", text="Call me back")
    assert offline.conversation.offline and offline.conversation.id != fired.conversation.id
    assert (await in_tx(app, chat.get_visitor, account_id=account.id, visitor_id=v.id)).email == "ann@acme.example"
    with pytest.raises(ValidationFailed) as info:
        await in_tx(app, chat.store_offline_message, account_id=account.id, visitor_id=v.id, name="Ann", email="no",
                    text="x")
    assert [e.field for e in info.value.errors] == ["email"]


async def test_a_visitors_first_message_after_a_trigger_is_its_reply_and_triggers_are_remembered(app):
    _, account = await make_account(app)
    v = (await connect(app, account)).visitor
    assert await in_tx(app, chat.fired_triggers, account_id=account.id, visitor_id=v.id) == []
    await in_tx(app, chat.post_trigger_message, account_id=account.id, visitor_id=v.id, trigger_id=7,
                agent_nick="Support", text="Need help?", client_id="trigger-7-1")
    first = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Yes")
    second = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Hello?")
    async with app.db.read() as session:
        replied = {row[0]: row[1] for row in await session.fetch(
            "SELECT id, replied_trigger_id FROM messages WHERE conversation_id = $1 AND kind = 'visitor'",
            first.conversation.id)}
    assert replied == {first.message.id: 7, second.message.id: None}
    assert await in_tx(app, chat.fired_triggers, account_id=account.id, visitor_id=v.id) == [7]
    _, other = await make_account(app)  # another account's visitor: none of these
    stranger = (await connect(app, other)).visitor
    assert await in_tx(app, chat.fired_triggers, account_id=other.id, visitor_id=stranger.id) == []


async def test_an_offline_message_needs_an_e_mail_and_a_retry_is_stored_once(app):
    _, account = await make_account(app)
    v = (await connect(app, account)).visitor
    with pytest.raises(ValidationFailed) as info:
        await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Call me",
                    client_id="c-1", offline=True)
    assert [e.field for e in info.value.errors] == ["email"]  # where to answer; a name is optional
    await in_tx(app, chat.update_visitor, account_id=account.id, visitor_id=v.id,
                changes={"name": "Ann", "email": "ann@acme.example"})
    left = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Call me",
                       client_id="c-1", offline=True)
    again = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="Call me",
                        client_id="c-1", offline=True)
    assert left.created and left.conversation.offline and not again.created
    assert (again.message.id, again.conversation.id) == (left.message.id, left.conversation.id)


async def test_the_agents_reads_open_conversations_replays_and_assign(app):
    partner_id, account = await make_account(app)
    async with app.db.transaction() as session:
        agent = await users.create_user(session, partner_id=partner_id, account_id=account.id,
                                        email=f"a{account.id}@x.example", password_hash="x", fullname="Agent Smith",
                                        nickname="Smith")
    ann, bob = (await connect(app, account)).visitor, (await connect(app, account)).visitor
    a1 = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=ann.id, text="a1")
    b1 = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=bob.id, text="b1")
    a2 = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=ann.id, text="a2")
    await in_tx(app, chat.close_conversation, account_id=account.id, conversation_id=b1.conversation.id, by="visitor")
    found = await in_tx(app, chat.open_conversations, account_id=account.id)
    assert [(c.id, last.text if last else None) for c, last in found] == [(a1.conversation.id, "a2")]
    after = await in_tx(app, chat.visitor_messages_after, account_id=account.id, visitor_id=ann.id,
                        after=a1.message.id, limit=10)
    assert [m.text for m in after] == ["a2"]
    current = await in_tx(app, chat.visitor_messages_after, account_id=account.id, visitor_id=bob.id, after=None,
                          limit=10)
    assert current == []  # bob's conversation is closed: nothing open to show
    everything = await in_tx(app, chat.account_messages_after, account_id=account.id, after=0, limit=10)
    assert [m.id for m in everything] == sorted(m.id for m in everything)
    assert {a1.message.id, b1.message.id, a2.message.id} <= {m.id for m in everything}
    taken = await in_tx(app, chat.assign_conversation, account_id=account.id, conversation_id=a1.conversation.id,
                        user_id=agent.id)
    assert taken.assigned_user_id == agent.id
    with pytest.raises(NotFound):
        await in_tx(app, chat.assign_conversation, account_id=account.id, conversation_id=a1.conversation.id,
                    user_id=agent.id + 10_000)
    card = await in_tx(app, chat.agent_card, account_id=account.id, user_id=agent.id)
    assert card == {"id": agent.id, "nickname": "Smith", "avatar": None}
    _, other = await make_account(app)
    assert await in_tx(app, chat.agent_card, account_id=other.id, user_id=agent.id) is None
    assert await in_tx(app, chat.vids_of, account_id=account.id, visitor_ids=[ann.id, bob.id]) == {
        ann.id: ann.vid, bob.id: bob.vid}
    assert await in_tx(app, chat.vids_of, account_id=other.id, visitor_ids=[ann.id]) == {}


@pytest.mark.parametrize(("text", "client_id", "field"), [
    ("", None, "text"), ("   ", None, "text"), ("x" * 2001, None, "text"), ("a\x00b", None, "text"), (5, None, "text"),
    ("ok", "", "clientId"), ("ok", "x" * 65, "clientId"), ("ok", "with space", "clientId"),
])
async def test_message_validation(app, text, client_id, field):
    _, account = await make_account(app)
    v = (await connect(app, account)).visitor
    with pytest.raises(ValidationFailed) as info:
        await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text=text,
                    client_id=client_id)
    assert [e.field for e in info.value.errors] == [field]
    assert (await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="x" * 2000,
                        client_id="x" * 64)).created


async def count(app, table, account_id):
    async with app.db.read() as session:
        return await session.fetchval(f"SELECT count(*) FROM {table} WHERE account_id = $1", account_id)


async def test_deleting_the_account_deletes_its_chats(app):
    partner_id, account = await make_account(app)
    v = (await connect(app, account)).visitor
    await in_tx(app, chat.record_page_view, account_id=account.id, visitor_id=v.id, url="https://acme.example/")
    await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="x")
    tables = ("visitors", "page_views", "conversations", "messages")
    assert [await count(app, t, account.id) for t in tables] == [1, 1, 1, 1]
    async with app.db.single() as session:
        await accounts.delete_account(session, partner_id=partner_id, account_id=account.id)
    assert [await count(app, t, account.id) for t in tables] == [0, 0, 0, 0]
    with pytest.raises(NotFound):
        await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="x")


async def test_retention_purge(app):
    _, account = await make_account(app)
    old = (await connect(app, account, now=T0)).visitor
    await in_tx(app, chat.record_page_view, account_id=account.id, visitor_id=old.id, url="https://a.example/", now=T0)
    done = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=old.id, text="x", now=T0)
    await in_tx(app, chat.close_conversation, account_id=account.id, conversation_id=done.conversation.id, by="agent",
                now=T0 + 1)
    kept = (await connect(app, account, now=T0)).visitor
    still_open = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=kept.id, text="y",
                             now=T0)
    recent = (await connect(app, account, now=T0 + 1000)).visitor
    while await in_tx(app, chat.purge_before, before=T0 + 500) == chat.PURGE_SLICE:
        pass
    async with app.db.read() as session:
        rows = await session.fetch("SELECT id FROM visitors WHERE account_id = $1 ORDER BY id", account.id)
        left = [r[0] for r in rows]
        conversations = [r[0] for r in await session.fetch("SELECT id FROM conversations WHERE account_id = $1",
                                                          account.id)]
    assert left == [kept.id, recent.id]  # the old one had nothing left; the other has an open conversation
    assert conversations == [still_open.conversation.id]
    assert await count(app, "messages", account.id) == 1 and await count(app, "page_views", account.id) == 0


async def test_the_retention_setting_purges_in_the_background(app, settings):
    _, account = await make_account(app)
    ten_days_ago = now() - 10 * 86400
    v = (await connect(app, account, now=ten_days_ago)).visitor
    done = await in_tx(app, chat.post_visitor_message, account_id=account.id, visitor_id=v.id, text="x",
                       now=ten_days_ago)
    await in_tx(app, chat.close_conversation, account_id=account.id, conversation_id=done.conversation.id,
                by="visitor", now=ten_days_ago)
    await Retention(app.db, 30).purge()
    assert await count(app, "conversations", account.id) == 1  # 10 days < 30: kept
    await Retention(app.db, 7).purge()
    assert [await count(app, t, account.id) for t in ("visitors", "conversations", "messages")] == [0, 0, 0]
    # the setting starts the purge with the server; 0 (the default) starts none
    jobs = [job.__qualname__ for job in app.core.background]
    assert "Retention.purge_loop" not in jobs  # (the outbox's worker runs by default: Worker.loop)
    kept = create_app(settings.model_copy(update={"chat_retention_days": 7}))
    assert sorted(job.__qualname__ for job in kept.core.background) == sorted([*jobs, "Retention.purge_loop"])
