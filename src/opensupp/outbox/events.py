"""The events hooks are sent: the chat service calls these in the transaction of its change, and
each active hook of the account that wants the event gets a delivery in the outbox.

- ``conversation-export`` hooks get Smartsupp's export (``export_payload``) of a closed
  conversation and of an offline message;
- ``webhook`` hooks get the events of their ``config.events`` in Smartsupp's v2 envelope
  ``{"type": "event_callback", "event", "timestamp", "account_id", "data"}``, ``data`` holding
  the conversation and its visitor as the partner API answers them (docs/API.md, "What each
  hook sends").

A change costs one indexed read of the account's hooks (``hooks (account_id, id)``); a
payload is built, once, only when a hook wants it. The hourly ``domain-stats-report`` is
``outbox/stats.py``'s.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from opensupp.chat import service as chat
from opensupp.chat.models import Conversation, Message, Visitor
from opensupp.db import Session
from opensupp.hooks.validation import WEBHOOK_EVENTS
from opensupp.outbox import service
from opensupp.timeutil import now

WEBHOOK, EXPORT = "webhook", "conversation-export"
OPENED, CLOSED, RATED = "conversation.opened", "conversation.closed", "conversation.rated"
AGENT_JOINED, AGENT_REPLIED = "conversation.agent_joined", "conversation.agent_replied"
CONTACT_REPLIED, OFFLINE_MESSAGE = "conversation.contact_replied", "offline_message.created"
PATHS_MAX = 50  # pages an export lists at most: the visitor's last ones
EXPORT_MESSAGES = 1000  # messages an export holds and counts at most: the conversation's last ones
_WORD = re.compile(r"\w+")

Data = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Target:
    """An active hook of the account that events go to (a webhook's ``events`` decoded)."""

    id: int
    name: str
    events: frozenset[str]


async def targets(session: Session, account_id: int) -> list[Target]:
    rows = await session.fetch(
        "SELECT id, name, config FROM hooks WHERE account_id = $1 AND active AND name IN ($2, $3) ORDER BY id",
        account_id, WEBHOOK, EXPORT,
    )
    return [Target(row[0], row[1], frozenset(orjson.loads(row[2]).get("events", WEBHOOK_EVENTS))
                   if row[1] == WEBHOOK else frozenset()) for row in rows]


def envelope(event: str, account_id: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "event_callback", "event": event, "timestamp": now(), "account_id": account_id, "data": data}


class Change:
    """One change of a conversation, and what its payloads are made of (each read once, when
    a hook first needs it)."""

    def __init__(self, session: Session, conversation: Conversation) -> None:
        self.session = session
        self.conversation = conversation
        self._visitor: Visitor | None = None

    async def visitor(self) -> Visitor:
        if self._visitor is None:
            self._visitor = await chat.get_visitor(self.session, account_id=self.conversation.account_id,
                                                   visitor_id=self.conversation.visitor_id)
        return self._visitor

    async def data(self, **extra: Any) -> dict[str, Any]:
        """``{"conversation", "visitor", **extra}``, as the partner API answers them."""
        from opensupp.chat.api import conversation_json, visitor_json  # the API's shapes (it imports the service)

        return {"conversation": conversation_json(self.conversation), "visitor": visitor_json(await self.visitor()),
                **extra}

    async def export(self) -> dict[str, Any]:
        return await export_payload(self.session, self.conversation, await self.visitor())

    async def send(self, events: Mapping[str, Data], *, export: bool = False) -> None:
        """Enqueue ``events`` (name: its data, made when first wanted) to the webhooks that
        want them and, with ``export``, the export to the conversation-export hooks."""
        account_id = self.conversation.account_id
        made: dict[str, dict[str, Any]] = {}
        for hook in await targets(self.session, account_id):
            wanted = ((EXPORT,) if export else ()) if hook.name == EXPORT else [e for e in events if e in hook.events]
            for event in wanted:
                if event not in made:
                    made[event] = await self.export() if event == EXPORT else envelope(
                        event, account_id, await events[event]())
                await service.enqueue(self.session, account_id=account_id, hook_id=hook.id, event=event,
                                      payload=made[event])


def _message_json(message: Message) -> dict[str, Any]:
    from opensupp.chat.api import message_json

    return message_json(message)


def _agent(user_id: int | None, nickname: str | None) -> dict[str, Any]:
    return {"id": None if user_id is None else str(user_id), "nickname": nickname}


# ----------------------------------------------------------------------------- what the chat service calls


async def visitor_wrote(session: Session, message: Message, conversation: Conversation, *, opened: bool) -> None:
    """The visitor's message (``conversation.contact_replied``), which may have opened the conversation."""
    change = Change(session, conversation)
    events: dict[str, Data] = {CONTACT_REPLIED: lambda: change.data(message=_message_json(message))}
    if opened:
        events = {OPENED: lambda: change.data(openedBy="visitor"), **events}
    await change.send(events)


async def trigger_wrote(session: Session, conversation: Conversation, *, opened: bool) -> None:
    """A trigger's message: an event only when it opened the conversation (no read otherwise)."""
    if opened:
        change = Change(session, conversation)
        await change.send({OPENED: lambda: change.data(openedBy="trigger")})


async def agent_wrote(session: Session, message: Message, conversation: Conversation, *, opened: bool,
                      joined: bool) -> None:
    """An agent's message (``conversation.agent_replied``); ``joined``: it assigned the
    conversation to the agent (``conversation.agent_joined``); ``opened``: it opened it."""
    change = Change(session, conversation)
    agent = _agent(message.user_id, message.agent_nick)
    events: dict[str, Data] = {}
    if opened:
        events[OPENED] = lambda: change.data(openedBy="agent")
    if joined:
        events[AGENT_JOINED] = lambda: change.data(agent=agent)
    events[AGENT_REPLIED] = lambda: change.data(message=_message_json(message), agent=agent)
    await change.send(events)


async def agent_assigned(session: Session, conversation: Conversation) -> None:
    """The conversation was assigned to another agent (``conversation.agent_joined``)."""
    change = Change(session, conversation)

    async def data() -> dict[str, Any]:
        user_id = conversation.assigned_user_id
        card = None if user_id is None else await chat.agent_card(session, account_id=conversation.account_id,
                                                                  user_id=user_id)
        return await change.data(agent=_agent(user_id, None if card is None else card["nickname"]))

    await change.send({AGENT_JOINED: data})


async def closed(session: Session, conversation: Conversation, *, by: str) -> None:
    """The conversation was closed: ``conversation.closed`` and the export."""
    change = Change(session, conversation)
    await change.send({CLOSED: lambda: change.data(closedBy=by)}, export=True)


async def rated(session: Session, conversation: Conversation) -> None:
    change = Change(session, conversation)
    await change.send({RATED: lambda: change.data(
        rating={"value": conversation.rating, "text": conversation.rating_text})})


async def offline_message(session: Session, message: Message, conversation: Conversation) -> None:
    """The offline form's message: ``offline_message.created`` and the export."""
    change = Change(session, conversation)
    await change.send({OFFLINE_MESSAGE: lambda: change.data(message=_message_json(message))}, export=True)


# ----------------------------------------------------------------------------- Smartsupp's export


async def export_payload(session: Session, conversation: Conversation, visitor: Visitor) -> dict[str, Any]:
    """Smartsupp's conversation export (HOOKS-FACTS 7.2): times in epoch milliseconds, what we
    do not know (the visitor's address, place, platform, note) null."""
    c = conversation
    messages = await _messages(session, c)
    end = c.closed_at if c.closed_at is not None else c.last_message_at
    names = await _trigger_names(session, c.account_id, {m.trigger_id for m in messages if m.trigger_id is not None})
    return {
        "accountId": c.account_id, "beginAt": c.created_at * 1000, "endAt": end * 1000,
        "channel": channel(c, messages, end),
        "visitor": export_visitor(visitor),
        "paths": await _paths(session, visitor, end),
        "messages": [export_message(m, visitor, names) for m in messages],
    }


def channel(c: Conversation, messages: Iterable[Message], end: int) -> dict[str, Any]:
    """The export's metrics, from the messages (oldest first). A response is an agent's message
    after one or more unanswered visitor messages, timed from the first of them (a trigger's
    message is no response); the conversation is missed when its last visitor message got
    none (an offline message is offline, not missed); messages and words count what the
    visitor, the agents and the triggers wrote (not the system's events)."""
    said = [m for m in messages if m.kind != "system"]
    responses: list[int] = []
    waiting_since: int | None = None
    for m in said:
        if m.kind == "visitor" and waiting_since is None:
            waiting_since = m.created_at
        elif m.kind == "agent" and waiting_since is not None:
            responses.append(m.created_at - waiting_since)
            waiting_since = None
    kinds = {m.kind for m in said}
    return {
        "id": c.id, "isChat": {"visitor", "agent"} <= kinds, "isMissed": not c.offline and waiting_since is not None,
        "isTriggered": "trigger" in kinds, "isOffline": c.offline,
        "isCompleted": c.status == "closed" and "visitor" in kinds and waiting_since is None,
        "isDropped": False,  # we have no dropped chats: a chat ends when the visitor or an agent closes it
        "duration": end - c.created_at,
        "avgResponse": sum(responses) // len(responses) if responses else None,
        "firstResponse": responses[0] if responses else None,
        "messagesCount": len(said), "wordsCount": sum(len(_WORD.findall(m.text)) for m in said),
        "rating": c.rating, "ratingDesc": None if c.rating is None else c.rating_text,
    }


def export_visitor(v: Visitor) -> dict[str, Any]:
    return {
        "id": v.id, "name": v.name or None, "email": v.email or None, "note": None, "group": v.group or None,
        "ipAddress": None, "city": None, "countryCode": None, "country": None, "userAgent": v.user_agent or None,
        "platform": None, "referer": v.referrer, "variables": v.variables,
    }


def export_message(m: Message, visitor: Visitor, trigger_names: Mapping[int, str]) -> dict[str, Any]:
    """Smartsupp's message: visitor, agent (``agent:<user id>``), a trigger's as an agent's
    from ``system`` with ``triggeredBy`` (the trigger's name), or system (``content`` is its code)."""
    name: str | None
    triggered_by = None
    if m.kind == "visitor":
        kind, name, sender = "visitor", visitor.name, f"visitor:{visitor.vid}"
    elif m.kind == "agent":
        kind, name, sender = "agent", m.agent_nick, f"agent:{m.user_id}"
    elif m.kind == "trigger":
        kind, name, sender = "agent", m.agent_nick, "system"
        triggered_by = trigger_names.get(m.trigger_id or 0, f"#{m.trigger_id}")  # a deleted trigger: its id
    else:
        kind, sender = "system", "system"
        name = visitor.name if m.text == chat.CLOSE_CODES["visitor"] else ""
    return {"type": kind, "name": name or "", "from": sender, "content": m.text, "sentAt": m.created_at * 1000,
            "triggeredBy": triggered_by}


async def _messages(session: Session, c: Conversation) -> list[Message]:
    """The conversation's last ``EXPORT_MESSAGES`` messages, oldest first: an export (built in
    the close's transaction, sent as one POST) stays bounded however long the chat was."""
    rows = await session.fetch(
        f"SELECT {chat.MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND account_id = $2"
        " ORDER BY id DESC LIMIT $3", c.id, c.account_id, EXPORT_MESSAGES,
    )
    return [Message(*row) for row in reversed(rows)]


async def _trigger_names(session: Session, account_id: int, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    placeholders = ", ".join(f"${i}" for i in range(2, len(ids) + 2))
    rows = await session.fetch(f"SELECT id, name FROM triggers WHERE account_id = $1 AND id IN ({placeholders})",
                               account_id, *sorted(ids))
    return {row[0]: row[1] for row in rows}


async def _paths(session: Session, visitor: Visitor, end: int) -> list[dict[str, str]]:
    """The pages the visitor opened up to the conversation's end, the last ``PATHS_MAX``, oldest first."""
    rows = await session.fetch(
        "SELECT url, title FROM page_views WHERE visitor_id = $1 AND account_id = $2 AND at <= $3"
        " ORDER BY id DESC LIMIT $4",
        visitor.id, visitor.account_id, end, PATHS_MAX,
    )
    return [{"url": row[0], "title": row[1]} for row in reversed(rows)]
