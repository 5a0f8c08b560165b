"""The partner API over the chat: conversations (list with filters, get with messages, send
as an agent, close) and the chat code, through the real app on both databases. Visitors and
their messages are made by the chat service, as the visitor connections make them."""

from __future__ import annotations

import secrets

import httpx
import pytest

from conftest import client_for, new_key
from opensupp.app import create_app
from opensupp.chat import service as chat
from opensupp.chat.protocol import new_vid
from opensupp_client import AsyncClient, Conversation, Message

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z
# the guide's chat code (shared/seed/rest-api-guide.txt), verbatim
GUIDE = (
    "<script type=\"text/javascript\"> var _smartsupp = _smartsupp || {}; _smartsupp.key = \"YOUR_ACCOUNT_KEY\";"
    " window.smartsupp||(function(d) { var s,c,o=smartsupp=function(){ o._.push(arguments)};o._=[];"
    " s=d.getElementsByTagName('script')[0];c=d.createElement('script'); c.type='text/javascript';"
    "c.charset='utf-8';c.async=true; c.src='//www.smartsuppchat.com/loader.js';s.parentNode.insertBefore(c,s);"
    " })(document); </script>"
)


async def new_account(api):
    return (await api.post("/accounts/create", json={"title": "Acme", "lang": "en"})).json()


async def new_user(api, aid, nickname="Smith"):
    body = {"email": f"{secrets.token_hex(5)}@acme.example", "password": "secret-pass", "fullname": "Agent Smith",
            "nickname": nickname}
    return (await api.post(f"/accounts/{aid}/users/create", json=body)).json()


async def visitor_writes(app, account, text="Hello", client_id=None, now=T0, vid=None):
    """A visitor (``vid``, or a new one) connects to the account and writes: (visitor, vid, Posted)."""
    vid = vid or new_vid()
    async with app.db.transaction() as session:
        account_id = await chat.account_id_of_key(session, account["accountKey"])
        visitor, _ = await chat.connect_visitor(session, account_id=account_id, vid=vid,
                                                details={"name": "Ann", "url": "https://acme.example/pricing"}, now=now)
        posted = await chat.post_visitor_message(session, account_id=account_id, visitor_id=visitor.id, text=text,
                                                 client_id=client_id, now=now)
    return visitor, vid, posted


async def test_list_get_send_close(app, api):
    account = await new_account(api)
    aid = account["id"]
    visitor, _, posted = await visitor_writes(app, account, client_id="v-1")
    cid = str(posted.conversation.id)
    page = (await api.get(f"/accounts/{aid}/conversations/")).json()
    assert [c["id"] for c in page["records"]] == [cid] and page["next"] is None
    listed = page["records"][0]
    assert listed["status"] == "pending" and listed["visitorId"] == str(visitor.id)
    assert listed["lastMessageAt"] == "2027-01-15T08:00:00Z" and listed["unreadByAgents"] == 1

    user = await new_user(api, aid)
    r = await api.post(f"/accounts/{aid}/conversations/{cid}/messages",
                       json={"userId": user["id"], "text": "Hi, how can I help?", "clientId": "crm-1"})
    assert r.status_code == 200, r.text
    sent = r.json()
    assert sent["message"]["type"] == "agent" and sent["message"]["agentNick"] == "Smith"
    assert sent["conversation"]["status"] == "open" and sent["conversation"]["assignedUserId"] == user["id"]
    # the same clientId again: the first message, nothing stored
    again = await api.post(f"/accounts/{aid}/conversations/{cid}/messages",
                           json={"userId": int(user["id"]), "text": "Hi, how can I help?", "clientId": "crm-1"})
    assert again.json()["message"] == sent["message"]

    r = await api.get(f"/accounts/{aid}/conversations/{cid}/get")
    assert r.status_code == 200, r.text
    got = r.json()
    assert [(m["type"], m["text"]) for m in got["messages"]] == [("visitor", "Hello"), ("agent", "Hi, how can I help?")]
    assert got["messages"][0]["clientId"] == "v-1" and got["messagesNext"] is None
    assert got["visitor"]["name"] == "Ann" and got["visitor"]["lastUrl"] == "https://acme.example/pricing"
    assert got["visitor"]["vid"] == visitor.vid
    after = (await api.get(f"/accounts/{aid}/conversations/{cid}/get?messagesAfter={got['messages'][0]['id']}")).json()
    assert [m["id"] for m in after["messages"]] == [got["messages"][1]["id"]]

    closed = await api.post(f"/accounts/{aid}/conversations/{cid}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert closed.json()["closeType"] == "agent_close" and closed.json()["closedAt"] is not None
    assert (await api.post(f"/accounts/{aid}/conversations/{cid}/close", json={})).json() == closed.json()
    assert (await api.get(f"/accounts/{aid}/conversations/{cid}/close")).status_code == 200  # the PHP wrapper's GET
    got = (await api.get(f"/accounts/{aid}/conversations/{cid}/get")).json()
    assert got["messages"][-1]["type"] == "system" and got["messages"][-1]["text"] == "close.agentClose"


async def test_filters_and_pages(app, api):
    account = await new_account(api)
    aid = account["id"]
    ids = []
    for i in range(5):
        *_, posted = await visitor_writes(app, account, now=T0 + 3600 * i)
        ids.append(str(posted.conversation.id))
    base = f"/accounts/{aid}/conversations/"
    first = (await api.get(base + "?limit=2")).json()
    assert [c["id"] for c in first["records"]] == ids[:2] and first["next"]
    rest = (await api.get(f"{base}?limit=2&after={first['next']}")).json()
    assert [c["id"] for c in rest["records"]] == ids[2:4]
    window = (await api.get(base, params={"from": "2027-01-15T09:00:00Z", "to": "2027-01-15T11:00:00+00:00"})).json()
    assert [c["id"] for c in window["records"]] == ids[1:4]
    user = await new_user(api, aid)
    await api.post(f"{base}{ids[0]}/messages", json={"userId": user["id"], "text": "x"})
    await api.post(f"{base}{ids[1]}/close")
    for status, expected in (("pending", ids[2:]), ("open", ids[:1]), ("closed", ids[1:2])):
        assert [c["id"] for c in (await api.get(base, params={"status": status})).json()["records"]] == expected


@pytest.mark.parametrize(("query", "field"), [
    ("status=done", "status"), ("from=yesterday", "from"), ("to=2027-01-15T09:00:00", "to"), ("limit=0", "limit"),
])
async def test_bad_filters_are_400(api, query, field):
    aid = (await new_account(api))["id"]
    r = await api.get(f"/accounts/{aid}/conversations/?{query}")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(("body", "field"), [
    ({"text": "x"}, "userId"), ({"userId": "1"}, "text"), ({"userId": "1", "text": ""}, "text"),
    ({"userId": "1", "text": "x" * 2001}, "text"), ({"userId": "1", "text": "x", "clientId": "a b"}, "clientId"),
    ({"userId": "01", "text": "x"}, "userId"), ({"userId": "1", "text": "x", "extra": 1}, "extra"),
])
async def test_send_validation(app, api, body, field):
    account = await new_account(api)
    *_, posted = await visitor_writes(app, account)
    r = await api.post(f"/accounts/{account['id']}/conversations/{posted.conversation.id}/messages", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "ValidationError" and r.json()["errors"][0]["field"] == field


async def test_tenancy(app, api):
    account, mine = await new_account(api), await new_account(api)
    *_, posted = await visitor_writes(app, account)
    cid, aid = posted.conversation.id, account["id"]
    user_elsewhere = await new_user(api, mine["id"])
    body = {"userId": user_elsewhere["id"], "text": "x"}
    r = await api.post(f"/accounts/{aid}/conversations/{cid}/messages", json=body)
    assert r.status_code == 404 and r.json()["message"] == f"No user {user_elsewhere['id']} in account {aid}."
    # the conversation under another of the partner's accounts
    assert (await api.get(f"/accounts/{mine['id']}/conversations/{cid}/get")).status_code == 404
    async with client_for(app, await new_key(app)) as other:
        for r in (await other.get(f"/accounts/{aid}/conversations/"),
                  await other.get(f"/accounts/{aid}/conversations/{cid}/get"),
                  await other.post(f"/accounts/{aid}/conversations/{cid}/close"),
                  await other.post(f"/accounts/{aid}/conversations/{cid}/messages", json={"userId": "1", "text": "x"}),
                  await other.get(f"/accounts/{aid}/chatcode")):
            assert r.status_code == 404, r.text
    assert (await api.get(f"/accounts/{aid}/conversations/{cid}/get")).json()["status"] == "pending"  # untouched


async def test_deleting_the_account_deletes_its_conversations(app, api):
    account = await new_account(api)
    *_, posted = await visitor_writes(app, account)
    assert (await api.get(f"/accounts/{account['id']}/delete")).status_code == 204
    async with app.db.read() as session:
        for table in ("visitors", "page_views", "conversations", "messages"):
            sql = f"SELECT count(*) FROM {table} WHERE account_id = $1"
            assert await session.fetchval(sql, int(account["id"])) == 0
    assert (await api.get(f"/accounts/{account['id']}/conversations/{posted.conversation.id}/get")).status_code == 404


async def test_chat_code_is_the_guides_with_this_server(api):
    account = await new_account(api)
    r = await api.get(f"/accounts/{account['id']}/chatcode")
    assert r.status_code == 200
    code = GUIDE.replace("YOUR_ACCOUNT_KEY", account["accountKey"])
    # the default OPENSUPP_PUBLIC_URL is plain http: the full address (a protocol-relative one would be https on
    # an https page, which a plain-http server does not answer)
    assert r.json() == {"chatcode": code.replace("//www.smartsuppchat.com", "http://127.0.0.1:8000"),
                        "accountKey": account["accountKey"]}


@pytest.mark.parametrize(("public_url", "host"), [
    ("https://chat.example.com", "//chat.example.com"),
    ("https://Chat.Example.com:8443/support/", "//chat.example.com:8443/support"),
    ("http://10.0.0.5:8000", "http://10.0.0.5:8000"),
])
async def test_chat_code_follows_the_public_url(settings, public_url, host):
    checked = type(settings)(public_url=public_url).public_url  # as the setting keeps it
    application = create_app(settings.model_copy(update={"public_url": checked}))
    await application.startup()
    try:
        async with client_for(application, await new_key(application)) as api:
            account = await new_account(api)
            code = (await api.get(f"/accounts/{account['id']}/chatcode")).json()["chatcode"]
    finally:
        await application.shutdown()
    # the guide's snippet, verbatim but for the key and the host (https: protocol-relative, as the guide writes it)
    assert code == GUIDE.replace("YOUR_ACCOUNT_KEY", account["accountKey"]).replace("//www.smartsuppchat.com", host)


async def test_the_sdk(app, api, key):
    """The SDK's conversations and chat code, against the same app."""
    account = await new_account(api)
    aid = account["id"]
    user = await new_user(api, aid, nickname="Bot")
    *_, posted = await visitor_writes(app, account, now=T0)
    await visitor_writes(app, account, now=T0 + 7200)
    transport = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    async with AsyncClient("http://api.test", key, http_client=transport) as sdk:
        listed = [c async for c in sdk.conversations.list(aid, limit=1)]
        assert len(listed) == 2 and all(isinstance(c, Conversation) for c in listed)
        narrowed = [c async for c in sdk.conversations.list(aid, until="2027-01-15T09:00:00Z", status="pending")]
        assert [c.id for c in narrowed] == [str(posted.conversation.id)]
        sent = await sdk.conversations.send_message(aid, posted.conversation.id, user_id=user["id"], text="Hello!",
                                                    client_id="bot-1")
        assert isinstance(sent, Message) and sent.agent_nick == "Bot" and sent.client_id == "bot-1"
        got = await sdk.conversations.get(aid, posted.conversation.id)
        assert [m.text for m in got.messages] == ["Hello", "Hello!"] and got.visitor["name"] == "Ann"
        assert got.messages_next is None and got.status == "open"
        later = await sdk.conversations.get(aid, posted.conversation.id, messages_after=got.messages[0].id)
        assert [m.id for m in later.messages] == [sent.id]
        closed = await sdk.conversations.close(aid, posted.conversation.id)
        assert closed.status == "closed" and closed.close_type == "agent_close"
        assert account["accountKey"] in await sdk.accounts.chatcode(aid)


async def test_a_send_under_an_idempotency_key_is_replayed(app, api):
    account = await new_account(api)
    *_, posted = await visitor_writes(app, account)
    user = await new_user(api, account["id"])
    path = f"/accounts/{account['id']}/conversations/{posted.conversation.id}/messages"
    body = {"userId": user["id"], "text": "Once"}
    first = await api.post(path, json=body, headers={"Idempotency-Key": "send-1"})
    again = await api.post(path, json=body, headers={"Idempotency-Key": "send-1"})
    assert first.status_code == again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    got = (await api.get(f"/accounts/{account['id']}/conversations/{posted.conversation.id}/get")).json()
    assert [m["text"] for m in got["messages"]] == ["Hello", "Once"]
