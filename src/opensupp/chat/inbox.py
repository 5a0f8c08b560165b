"""The agents' reads behind the dashboard (site/dashboard.py): the inbox, one conversation with
its visitor and messages, a search, the account's agents. Every read is scoped by the account
(the signed-in user's) and bounded; answers are in the protocol's wire shapes
(docs/chat-protocol.md 2.2) with the visitor's card added to each conversation.

The inbox holds the account's pending and open conversations (the newest ``OPEN_MAX``) and its
latest closed ones (``CLOSED_MAX``, by close time). A search matches, case-insensitively, the
visitor's name or e-mail or any message's text (a substring; SQLite folds ASCII letters only);
it reads the account's messages, so it is kept to ``SEARCH_MAX`` answers.
"""

from __future__ import annotations

from typing import Any

from opensupp.chat.core import conversation_wire, message_wire, visitor_wire
from opensupp.chat.models import Conversation, Message, Visitor
from opensupp.chat.service import CONVERSATION_COLUMNS, MESSAGE_COLUMNS, VISITOR_COLUMNS, conversation_not_found
from opensupp.db import Session
from opensupp.errors import invalid

Json = dict[str, Any]

OPEN_MAX = 500
CLOSED_MAX = 50
MESSAGES_MAX = 500
SEARCH_MAX = 50
QUERY_MIN, QUERY_MAX = 2, 100

_C = ", ".join("c." + column for column in CONVERSATION_COLUMNS.split(", "))
_V = ", ".join("v." + column for column in VISITOR_COLUMNS.split(", "))
_WIDTH = len(CONVERSATION_COLUMNS.split(", "))
_JOINED = f"SELECT {_C}, {_V} FROM conversations c JOIN visitors v ON v.id = c.visitor_id WHERE c.account_id = $1"


def _split(row: Any) -> tuple[Conversation, Visitor]:
    values = list(row)
    return Conversation.from_row(*values[:_WIDTH]), Visitor.from_row(*values[_WIDTH:])


def card(visitor: Visitor) -> Json:
    """What the inbox's list shows of a visitor."""
    return {"vid": visitor.vid, "name": visitor.name or None, "email": visitor.email or None}


async def _summaries(session: Session, account_id: int, rows: list[Any]) -> list[Json]:
    """Each row (a conversation and its visitor) as the inbox shows it, with its last message."""
    pairs = [_split(row) for row in rows]
    last: dict[int, Message] = {}
    if pairs:
        ids = [c.id for c, _ in pairs]
        placeholders = ", ".join(f"${i}" for i in range(2, len(ids) + 2))
        for found in await session.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE account_id = $1 AND id IN (SELECT max(id) FROM messages"
            f" WHERE conversation_id IN ({placeholders}) GROUP BY conversation_id)",
            account_id, *ids,
        ):
            message = Message(*found)
            last[message.conversation_id] = message
    return [conversation_wire(c, v.vid) | {"visitor": card(v), "lastMessage": _wire_or_none(last.get(c.id))}
            for c, v in pairs]


def _wire_or_none(message: Message | None) -> Json | None:
    return None if message is None else message_wire(message)


async def inbox(session: Session, *, account_id: int) -> list[Json]:
    """The pending and open conversations (newest first), then the latest closed ones."""
    current = await session.fetch(f"{_JOINED} AND c.status <> 'closed' ORDER BY c.id DESC LIMIT $2",
                                  account_id, OPEN_MAX)
    closed = await session.fetch(f"{_JOINED} AND c.status = 'closed' ORDER BY c.closed_at DESC, c.id DESC LIMIT $2",
                                 account_id, CLOSED_MAX)
    return await _summaries(session, account_id, [*current, *closed])


async def summary(session: Session, *, account_id: int, conversation_id: int) -> Json:
    """One conversation as the inbox lists it (one that appeared since the page loaded)."""
    rows = await session.fetch(f"{_JOINED} AND c.id = $2", account_id, conversation_id)
    if not rows:
        raise conversation_not_found(conversation_id, account_id)
    return (await _summaries(session, account_id, rows))[0]


async def conversation(session: Session, *, account_id: int, conversation_id: int) -> Json:
    """A conversation of the account, its visitor (the agents' view) and its last MESSAGES_MAX
    messages, oldest first."""
    rows = await session.fetch(f"{_JOINED} AND c.id = $2", account_id, conversation_id)
    if not rows:
        raise conversation_not_found(conversation_id, account_id)
    found, visitor = _split(rows[0])
    messages = await session.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND account_id = $2"
        " ORDER BY id DESC LIMIT $3",
        conversation_id, account_id, MESSAGES_MAX,
    )
    return {"conversation": conversation_wire(found, visitor.vid), "visitor": visitor_wire(visitor),
            "messages": [message_wire(Message(*row)) for row in reversed(messages)]}


def _pattern(query: str) -> str:
    """A LIKE pattern matching ``query`` anywhere (its own % and _ taken literally)."""
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(session: Session, *, account_id: int, query: str) -> list[Json]:
    """The account's conversations (newest activity first, at most SEARCH_MAX) whose visitor's
    name or e-mail, or one of whose messages, holds ``query`` (QUERY_MIN to QUERY_MAX characters)."""
    query = query.strip()
    if not QUERY_MIN <= len(query) <= QUERY_MAX:
        raise invalid("q", f"must be {QUERY_MIN} to {QUERY_MAX} characters")
    rows = await session.fetch(
        f"{_JOINED} AND (lower(v.email) LIKE $2 ESCAPE '\\' OR lower(v.name) LIKE $2 ESCAPE '\\'"
        " OR EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.account_id = $1"
        " AND m.kind IN ('visitor', 'agent') AND lower(m.text) LIKE $2 ESCAPE '\\'))"
        " ORDER BY c.last_message_at DESC, c.id DESC LIMIT $3",
        account_id, _pattern(query), SEARCH_MAX,
    )
    return await _summaries(session, account_id, rows)


async def agents(session: Session, *, account_id: int) -> list[Json]:
    """The account's users, as the dashboard names them (assign, presence)."""
    rows = await session.fetch(
        "SELECT id, nickname, fullname, avatar FROM users WHERE account_id = $1 ORDER BY nickname, id LIMIT 1000",
        account_id,
    )
    return [{"id": row[0], "nickname": row[1] or row[2], "fullname": row[2], "avatar": row[3] or None}
            for row in rows]


__all__ = ("agents", "conversation", "inbox", "search", "summary")
