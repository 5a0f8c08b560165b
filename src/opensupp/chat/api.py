"""HTTP routes for conversations and the chat code: /accounts/:aid/conversations/... and
/accounts/:aid/chatcode. Parse, call the chat service, serialize."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from opensupp.accounts import service as accounts
from opensupp.chat import service
from opensupp.chat.core import conversation_wire, message_wire
from opensupp.chat.models import MESSAGE_MAX, Conversation, Message, Visitor
from opensupp.db import Session
from opensupp.errors import invalid
from opensupp.officehours.api import YEAR_PATTERN
from opensupp.officehours.validation import parse_instant
from opensupp.timeutil import iso
from opensupp.web.fields import Body, Omittable, TextRules
from opensupp.web.resources import Out, ReadOnlyId
from opensupp.web.routing import Router

if TYPE_CHECKING:
    from opensupp.chat.transport import ChatEvents

router = Router()
TAG = "Conversations"
#: how long telling the sockets of a committed send or close may take (a hub that hangs)
PUBLISH_SECONDS = 5.0
#: messages a conversation's ``get`` answers at most; ``messagesAfter`` reads on
MESSAGES_PER_GET = 500

# ----------------------------------------------------------------------------- the chat code

#: the guide's chat code (shared/seed/rest-api-guide.txt), verbatim but for the key and the loader's address
GUIDE_SNIPPET = (
    "<script type=\"text/javascript\"> var _smartsupp = _smartsupp || {}; _smartsupp.key = \"YOUR_ACCOUNT_KEY\";"
    " window.smartsupp||(function(d) { var s,c,o=smartsupp=function(){ o._.push(arguments)};o._=[];"
    " s=d.getElementsByTagName('script')[0];c=d.createElement('script'); c.type='text/javascript';"
    "c.charset='utf-8';c.async=true; c.src='//www.smartsuppchat.com/loader.js';s.parentNode.insertBefore(c,s);"
    " })(document); </script>"
)


def loader_url(public_url: str) -> str:
    """Where the chat code loads ``loader.js`` from: ``//host/loader.js`` (protocol-relative, as
    the guide writes it) when OPENSUPP_PUBLIC_URL is https, so a page loads it over its own
    scheme; the full ``http://...`` otherwise, since an https page would otherwise ask for an
    https address that a plain-http server (development) does not answer."""
    parts = urllib.parse.urlsplit(public_url)
    base = f"//{parts.netloc}{parts.path}" if parts.scheme == "https" else public_url
    return f"{base}/loader.js"


def chat_code(public_url: str, account_key: str) -> str:
    """The guide's snippet for the account: its key, and this server's loader."""
    return (GUIDE_SNIPPET.replace("YOUR_ACCOUNT_KEY", account_key)
            .replace("//www.smartsuppchat.com/loader.js", loader_url(public_url)))


class ChatCodeOut(Out):
    chatcode: str = Field(description="The guide's chat code with this account's key and this server's loader.js "
                                      "(OPENSUPP_PUBLIC_URL); goes between <head> and </head>.")
    accountKey: str = Field(pattern=r"^[0-9a-f]{40}$")


@router.get("/accounts/{aid}/chatcode", response=ChatCodeOut, tag="Accounts")
async def get_chat_code(req: Any, session: Session) -> dict[str, Any]:
    """Get the chat code

    The snippet of the partner guide, verbatim but for the account's key and the address of
    `loader.js`: `//HOST/loader.js` when OPENSUPP_PUBLIC_URL is https (the guide's
    protocol-relative form), the full `http://HOST:PORT/loader.js` when it is plain http.
    """
    account = await accounts.get_account(session, partner_id=req.partner_id, account_id=req.ids[0])
    return {"chatcode": chat_code(req.app.settings.public_url, account.account_key),
            "accountKey": account.account_key}


# ----------------------------------------------------------------------------- conversations

Status = Literal["pending", "open", "closed"]
Kind = Literal["visitor", "agent", "trigger", "system"]
_ISO = Field(description="ISO 8601 UTC.", examples=["2026-11-24T10:00:00Z"])


class RatingOut(Out):
    value: int = Field(ge=1, le=5)
    text: str


class ConversationOut(Out):
    id: str
    visitorId: str
    status: Status = Field(description="pending: the visitor wrote, no agent yet; open: an agent answered; closed.")
    offline: bool = Field(description="Left through the offline form while nobody was online.")
    assignedUserId: str | None = Field(description="The first agent who answered.")
    rating: RatingOut | None
    closeType: str | None = Field(description="visitor_close or agent_close; null while not closed.")
    createdAt: str = _ISO
    lastMessageAt: str = _ISO
    closedAt: str | None = Field(description="ISO 8601 UTC; null while not closed.")
    unreadByVisitor: int
    unreadByAgents: int


class MessageOut(Out):
    id: str = Field(description="Increasing within the server: a later message has a larger id.")
    type: Kind = Field(description="Who wrote it: the visitor, an agent (`userId`), a trigger (`triggerId`, shown "
                                   "as from `agentNick`), or the system (`text` is an event code, such as "
                                   "close.visitorClose).")
    userId: str | None
    triggerId: str | None
    agentNick: str | None
    text: str
    clientId: str | None = Field(description="The sender's id for the message, which a retry repeats.")
    createdAt: str = _ISO


class VisitorOut(Out):
    id: str
    vid: str = Field(description="The id the chat code exposes as `smartsupp.vid`.")
    name: str
    email: str
    phone: str
    lang: str
    group: str
    variables: dict[str, Any] = Field(description="`{key: {label, value}}` (a flat variable is its own label).")
    visits: int
    chats: int = Field(description="Finished chats.")
    firstSeenAt: str = _ISO
    lastSeenAt: str = _ISO
    lastUrl: str
    lastTitle: str
    referrer: str
    userAgent: str


class ConversationDetailOut(ConversationOut):
    visitor: VisitorOut
    messages: list[MessageOut] = Field(description=f"Oldest first, at most {MESSAGES_PER_GET}.")
    messagesNext: str | None = Field(description="When more messages follow: pass it as `messagesAfter` to read "
                                                 "on; null when these are the last.")


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


def conversation_json(c: Conversation) -> dict[str, Any]:
    return {
        "id": str(c.id), "visitorId": str(c.visitor_id), "status": c.status, "offline": c.offline,
        "assignedUserId": _id(c.assigned_user_id),
        "rating": None if c.rating is None else {"value": c.rating, "text": c.rating_text},
        "closeType": c.close_type, "createdAt": iso(c.created_at), "lastMessageAt": iso(c.last_message_at),
        "closedAt": None if c.closed_at is None else iso(c.closed_at),
        "unreadByVisitor": c.unread_by_visitor, "unreadByAgents": c.unread_by_agents,
    }


def message_json(m: Message) -> dict[str, Any]:
    return {"id": str(m.id), "type": m.kind, "userId": _id(m.user_id), "triggerId": _id(m.trigger_id),
            "agentNick": m.agent_nick, "text": m.text, "clientId": m.client_id, "createdAt": iso(m.created_at)}


def visitor_json(v: Visitor) -> dict[str, Any]:
    return {
        "id": str(v.id), "vid": v.vid, "name": v.name, "email": v.email, "phone": v.phone, "lang": v.lang,
        "group": v.group, "variables": v.variables, "visits": v.visits, "chats": v.chats,
        "firstSeenAt": iso(v.first_seen_at), "lastSeenAt": iso(v.last_seen_at), "lastUrl": v.last_url,
        "lastTitle": v.last_title, "referrer": v.referrer, "userAgent": v.user_agent,
    }


_INSTANT_SCHEMA = {"type": "string", "format": "date-time", "pattern": f"^{YEAR_PATTERN}-",
                   "example": "2026-12-24T16:00:00Z"}
_STATUS = {"name": "status", "in": "query", "required": False,
           "schema": {"type": "string", "enum": list(service.STATUSES)},
           "description": "Only the conversations in this status."}
_FROM = {"name": "from", "in": "query", "required": False, "schema": _INSTANT_SCHEMA,
         "description": "Only those whose last message is at or after this instant (an offset, Z or like +01:00, "
                        "is required)."}
_TO = {"name": "to", "in": "query", "required": False, "schema": _INSTANT_SCHEMA,
       "description": "Only those whose last message is at or before this instant."}
_MESSAGES_AFTER = {"name": "messagesAfter", "in": "query", "required": False,
                   "schema": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$"},
                   "description": "Answer the messages after this message id (the previous answer's "
                                  "`messagesNext`); default: from the first."}


def _instant(query: dict[str, str], name: str) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    at, message = parse_instant(text)
    if message is not None:
        raise invalid(name, message)
    return at


def _status(query: dict[str, str]) -> str | None:
    status = query.get("status")
    if status is not None and status not in service.STATUSES:
        raise invalid("status", "must be one of: pending, open or closed")
    return status


def _message_id(query: dict[str, str]) -> int:
    text = query.get("messagesAfter", "0")
    if not (text.isascii() and text.isdigit() and len(text) <= 18 and (text == "0" or text[0] != "0")):
        raise invalid("messagesAfter", "must be a message id (decimal digits), like a previous messagesNext")
    return int(text)


@router.list("/accounts/{aid}/conversations", response=ConversationOut, tag=TAG, query=(_STATUS, _FROM, _TO))
async def list_conversations(
    req: Any, session: Session, after: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """List conversations

    The account's conversations, oldest first; `status`, `from` and `to` (on the time of
    the last message, both inclusive) narrow the list.
    """
    query = req.query
    status, since, until = _status(query), _instant(query, "from"), _instant(query, "to")
    found, more = await service.list_conversations(session, partner_id=req.partner_id, account_id=req.ids[0],
                                                   after=after, limit=limit, status=status, since=since, until=until)
    return [conversation_json(c) for c in found], more


@router.get("/accounts/{aid}/conversations/{cid}/get", response=ConversationDetailOut, tag=TAG,
            query=(_MESSAGES_AFTER,))
async def get_conversation(req: Any, session: Session) -> dict[str, Any]:
    """Get a conversation

    The conversation, its visitor and its messages, oldest first, at most 500: when
    `messagesNext` is not null, more follow; pass it as `messagesAfter` to read on.
    """
    account_id, conversation_id = req.ids
    after = _message_id(req.query)
    conversation = await service.get_conversation(session, partner_id=req.partner_id, account_id=account_id,
                                                  conversation_id=conversation_id)
    visitor = await service.get_visitor(session, account_id=account_id, visitor_id=conversation.visitor_id)
    found = await service.messages_after(session, account_id=account_id, conversation_id=conversation_id,
                                         after_id=after, limit=MESSAGES_PER_GET + 1)
    shown = found[:MESSAGES_PER_GET]
    return {**conversation_json(conversation), "visitor": visitor_json(visitor),
            "messages": [message_json(m) for m in shown],
            "messagesNext": str(shown[-1].id) if len(found) > MESSAGES_PER_GET else None}


class MessageSend(Body):
    userId: ReadOnlyId = Field(description="The agent who writes: a user of the account (as a string or a number).",
                               json_schema_extra={"pattern": "^[1-9][0-9]{0,17}$"})
    text: Annotated[str, TextRules(MESSAGE_MAX, multiline=True)]
    clientId: Omittable[Annotated[str, TextRules(64)]] = Field(
        None, json_schema_extra={"pattern": "^[\\x21-\\x7e]{1,64}$"},
        description="Your id for this message (1 to 64 printable ASCII characters): sending it again answers the "
                    "first message and stores nothing.",
    )


class SentOut(Out):
    message: MessageOut
    conversation: ConversationOut


# a create (it makes a message: the body is required, an Idempotency-Key is honoured), in a transaction of its own
@router.add("create", "/accounts/{aid}/conversations/{cid}/messages", body=MessageSend, response=SentOut, tag=TAG,
            unit="transaction")
async def send_message(req: Any, session: Session, body: MessageSend) -> dict[str, Any]:
    """Send a message as an agent

    Writes `text` into the conversation as the user `userId` (a user of the account, else
    404), shown to the visitor under the user's nickname. The conversation becomes open
    (a closed one reopens) and is assigned to the first agent who wrote. With `clientId`,
    a retry answers the message stored the first time (so does an `Idempotency-Key`).
    """
    account_id, conversation_id = req.ids
    user_id = _user_id(body.userId)
    await service.get_conversation(session, partner_id=req.partner_id, account_id=account_id,
                                   conversation_id=conversation_id)
    posted = await service.post_agent_message(session, account_id=account_id, conversation_id=conversation_id,
                                              user_id=user_id, text=body.text, client_id=body.clientId)
    if posted.created:
        message = message_wire(posted.message)
        await _after_commit(req, session, posted.conversation,
                            lambda events, vid: events.message(account_id, vid, message))
    return {"message": message_json(posted.message), "conversation": conversation_json(posted.conversation)}


async def _after_commit(req: Any, session: Session, conversation: Conversation,
                        tell: Callable[[ChatEvents, str], Awaitable[None]]) -> None:
    """Once the unit of work has committed, tell the chat's sockets (the visitor's box, the
    agents' dashboards, on every server process) through the transport's hub; ``tell`` gets
    the events and the conversation's vid."""
    transport = req.app.chat
    if transport is None:
        return
    visitor_id = conversation.visitor_id
    vid = (await service.vids_of(session, account_id=conversation.account_id, visitor_ids=[visitor_id]))[visitor_id]

    async def publish() -> None:
        await asyncio.wait_for(tell(await transport.events(), vid), PUBLISH_SECONDS)

    session.on_commit(publish)


def _user_id(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18 and text[0] != "0"):
        raise invalid("userId", "must be a user id (decimal digits, like \"12\")")
    return int(text)


class ConversationClose(Body):
    """No fields: the conversation is closed by an agent."""


@router.add("action", "/accounts/{aid}/conversations/{cid}/close", body=ConversationClose, response=ConversationOut,
            tag=TAG)
async def close_conversation(req: Any, session: Session, body: ConversationClose) -> dict[str, Any]:
    """Close a conversation

    Closed by an agent (`closeType` agent_close). Closing a closed conversation answers it
    unchanged.
    """
    account_id, conversation_id = req.ids
    await service.get_conversation(session, partner_id=req.partner_id, account_id=account_id,
                                   conversation_id=conversation_id)
    closed = await service.close_conversation(session, account_id=account_id, conversation_id=conversation_id,
                                              by="agent")
    if closed.message is not None:
        conversation = closed.conversation
        await _after_commit(req, session, conversation, lambda events, vid: events.closed(
            account_id, vid, conversation_wire(conversation, vid), None, close_type="agent_close"))
    return conversation_json(closed.conversation)
