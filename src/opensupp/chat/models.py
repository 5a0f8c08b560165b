"""Chat: the tables of visitors, page views, conversations and messages, and the records the
service answers.

Every table is under an account (``child_table``: deleted with it, in the account delete's one
statement, through ON DELETE CASCADE) and the rows under a visitor or a conversation cascade
from it too, so a retention purge deletes a conversation (or a visitor) in one statement.
Timestamps are integer Unix seconds, as everywhere in the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, SmallInteger, String, Text

from opensupp.accounts.models import child_table

#: bounds (code points) of what a visitor or an agent may store
MESSAGE_MAX = 2000
NAME_MAX = 255
EMAIL_MAX = 254
PHONE_MAX = 64
GROUP_MAX = 255
URL_MAX = 2000
TITLE_MAX = 1000
USER_AGENT_MAX = 512
CLIENT_ID_MAX = 64
RATING_TEXT_MAX = 1000
VARIABLES_MAX_KEYS = 50
VARIABLES_MAX_BYTES = 8 * 1024

visitors = child_table(
    "visitors",
    Column("vid", String(22), nullable=False),
    Column("name", String(NAME_MAX), nullable=False),
    Column("email", String(EMAIL_MAX), nullable=False),
    Column("phone", String(PHONE_MAX), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("grp", String(GROUP_MAX), nullable=False),  # the visitor's group ("group" is an SQL keyword)
    Column("variables", Text, nullable=False),  # JSON: {key: {"label", "value"}}
    Column("visits", Integer, nullable=False),
    Column("chats", Integer, nullable=False),  # finished chats: number_of_chats
    Column("first_seen_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("last_url", String(URL_MAX), nullable=False),
    Column("last_title", String(TITLE_MAX), nullable=False),
    Column("referrer", String(URL_MAX), nullable=False),
    Column("user_agent", String(USER_AGENT_MAX), nullable=False),
    Column("visit_started_ms", BigInteger, nullable=False),  # Unix ms: the triggers' site clock counts from it
)
# a visitor by the id its token carries
Index("ix_visitors_account_id_vid", visitors.c.account_id, visitors.c.vid, unique=True)
Index("ix_visitors_last_seen_at", visitors.c.last_seen_at)  # the retention purge's scan

page_views = child_table(
    "page_views",
    Column("visitor_id", BigInteger, ForeignKey("visitors.id", ondelete="CASCADE"), nullable=False),
    Column("url", String(URL_MAX), nullable=False),
    Column("title", String(TITLE_MAX), nullable=False),
    Column("referrer", String(URL_MAX), nullable=False),
    Column("at", BigInteger, nullable=False),
)
# a visitor's pages (and the cascade from visitors); the retention purge's scan
Index("ix_page_views_visitor_id_id", page_views.c.visitor_id, page_views.c.id)
Index("ix_page_views_at", page_views.c.at)

conversations = child_table(
    "conversations",
    Column("visitor_id", BigInteger, ForeignKey("visitors.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(8), nullable=False),  # pending | open | closed
    Column("offline", Boolean, nullable=False),  # left through the offline form
    # no foreign key: a deleted user's conversations and messages keep their history
    Column("assigned_user_id", BigInteger, nullable=True),
    Column("rating", SmallInteger, nullable=True),
    Column("rating_text", Text, nullable=False),
    Column("close_type", String(16), nullable=True),  # visitor_close | agent_close | ...
    Column("created_at", BigInteger, nullable=False),
    Column("last_message_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger, nullable=True),
    Column("unread_by_visitor", Integer, nullable=False),
    Column("unread_by_agents", Integer, nullable=False),
)
_c = conversations.c
Index("ix_conversations_account_id_last_message_at", _c.account_id, _c.last_message_at)  # the list's from/to
Index("ix_conversations_visitor_id_id", _c.visitor_id, _c.id)  # a visitor's current one (and the cascade)
Index("ix_conversations_closed_at", _c.closed_at)  # the retention purge's scan

messages = child_table(
    "messages",
    Column("conversation_id", BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # visitor | agent | trigger | system
    Column("user_id", BigInteger, nullable=True),
    Column("trigger_id", BigInteger, nullable=True),
    Column("agent_nick", String(NAME_MAX), nullable=True),
    Column("text", Text, nullable=False),
    Column("client_id", String(CLIENT_ID_MAX), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # a visitor's first message after a trigger's: that trigger (the stats count replies to auto messages)
    Column("replied_trigger_id", BigInteger, nullable=True),
)
_m = messages.c
Index("ix_messages_conversation_id_id", _m.conversation_id, _m.id)  # a conversation's, after an id
# a client's retry finds its first message (NULLs, the server's own messages, never collide)
Index("ix_messages_conversation_id_client_id", _m.conversation_id, _m.client_id, unique=True)


@dataclass(frozen=True, slots=True)
class Visitor:
    """A visitor as read (``service.VISITOR_COLUMNS``); ``variables`` decoded, always labelled:
    ``{key: {"label": ..., "value": ...}}``."""

    id: int
    account_id: int
    vid: str
    name: str
    email: str
    phone: str
    lang: str
    group: str
    variables: dict[str, Any]
    visits: int
    chats: int
    first_seen_at: int
    last_seen_at: int
    last_url: str
    last_title: str
    referrer: str
    user_agent: str
    visit_started_ms: int

    @classmethod
    def from_row(cls, *row: Any) -> Visitor:
        values = list(row)
        values[8] = orjson.loads(values[8])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation as read (``service.CONVERSATION_COLUMNS``)."""

    id: int
    account_id: int
    visitor_id: int
    status: str
    offline: bool
    assigned_user_id: int | None
    rating: int | None
    rating_text: str
    close_type: str | None
    created_at: int
    last_message_at: int
    closed_at: int | None
    unread_by_visitor: int
    unread_by_agents: int

    @classmethod
    def from_row(cls, *row: Any) -> Conversation:
        values = list(row)
        values[4] = bool(values[4])  # SQLite answers a boolean as 0 or 1
        return cls(*values)


@dataclass(frozen=True, slots=True)
class Message:
    """A message as read (``service.MESSAGE_COLUMNS``). ``kind``: visitor, agent (``user_id``),
    trigger (``trigger_id``; ``agent_nick`` is the name shown) or system (``text`` is a code
    such as ``close.visitorClose``)."""

    id: int
    account_id: int
    conversation_id: int
    kind: str
    user_id: int | None
    trigger_id: int | None
    agent_nick: str | None
    text: str
    client_id: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class PageView:
    """A page a visitor opened (``service.PAGE_VIEW_COLUMNS``)."""

    id: int
    account_id: int
    visitor_id: int
    url: str
    title: str
    referrer: str
    at: int
