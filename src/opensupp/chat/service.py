"""Visitors, page views, conversations and messages: what the realtime layer (the visitor and
agent connections), the partner API and the dashboard call.

Every function takes the caller's Session and does its writes in it, never committing: the
caller's unit of work (``db.transaction()``) is the one transaction. Publishing is the
caller's too, after the commit: each write answers what happened (the visitor,
``Posted``, ``Closed``, a record), which is what the hub fans out (``Posted.created`` is
False for a client's retry, which was published the first time). The hooks' events are not
the caller's: a write enqueues them itself, in its transaction (``outbox.events``).

A write under an account locks the account row first on PostgreSQL (``LOCK_ACCOUNT``, as
db/children.py does), so it never deadlocks with the account's delete: it lands before the
delete (and is deleted with it) or finds the account gone (NotFound).

The visitor side is scoped by the account (resolved from the public ``accountKey`` once, at
connect) and, where a visitor acts on a conversation, by the visitor too (``visitor_id``):
one visitor can neither read nor write another's conversation. The partner side is scoped
by the partner through the account (``partner_id``), as every partner API read is.

Bad input raises ``ValidationFailed`` naming the field (message text: 1 to 2,000 code
points; names 255; variables 50 keys and 8 KiB as JSON); a conversation, visitor or user
outside the account raises ``NotFound``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from opensupp import values
from opensupp.chat.models import EMAIL_MAX, NAME_MAX, RATING_TEXT_MAX, Conversation, Message, PageView, Visitor
from opensupp.chat.validation import (
    check_choice,
    check_client_id,
    check_text,
    detail_problem,
    text_problem,
    visitor_columns,
)
from opensupp.db import ForeignKeyViolation, Session
from opensupp.db.children import LOCK_ACCOUNT, OWNED, account_not_found
from opensupp.errors import Conflict, FieldError, NotFound, ValidationFailed, invalid
from opensupp.mail import service as mail
from opensupp.outbox import events
from opensupp.timeutil import now as clock

VISITOR_COLUMNS = ("id, account_id, vid, name, email, phone, lang, grp, variables, visits, chats, first_seen_at,"
                   " last_seen_at, last_url, last_title, referrer, user_agent, visit_started_ms")
CONVERSATION_COLUMNS = ("id, account_id, visitor_id, status, offline, assigned_user_id, rating, rating_text,"
                        " close_type, created_at, last_message_at, closed_at, unread_by_visitor, unread_by_agents")
MESSAGE_COLUMNS = "id, account_id, conversation_id, kind, user_id, trigger_id, agent_nick, text, client_id, created_at"
PAGE_VIEW_COLUMNS = "id, account_id, visitor_id, url, title, referrer, at"

#: a visitor away this many seconds or more starts a new visit (CHAT-FACTS 4: number_of_visits)
VISIT_GAP = 30
STATUSES = ("pending", "open", "closed")
CLOSERS = ("visitor", "agent")
#: the system message a close leaves in the conversation (Smartsupp's export codes)
CLOSE_CODES = {"visitor": "close.visitorClose", "agent": "close.agentClose"}
MESSAGES_MAX_PAGE = 1000
RATINGS = range(1, 6)

_CLOSE_TYPE = re.compile(r"[a-z_]{1,16}")
_VID = re.compile(r"[A-Za-z0-9_-]{22}")


# --------------------------------------------------------------------------- what a write answers


class Posted(NamedTuple):
    """A message posted: the stored message, its conversation after the post, and whether it
    was stored now (False: a retry of the same ``client_id``, answered with the first one,
    which changed nothing and was published already)."""

    message: Message
    conversation: Conversation
    created: bool


class Closed(NamedTuple):
    """A close: the conversation, and the system message that records it (None when the
    conversation was closed already, and nothing changed)."""

    conversation: Conversation
    message: Message | None


# --------------------------------------------------------------------------- rows to records


def _visitor(row: Any) -> Visitor:
    return Visitor.from_row(*row)


def _conversation(row: Any) -> Conversation:
    return Conversation.from_row(*row)


def _message(row: Any) -> Message:
    return Message(*row)


def conversation_not_found(conversation_id: int, account_id: int) -> NotFound:
    return NotFound(f"No conversation {conversation_id} in account {account_id}.")


def visitor_not_found(visitor_id: int, account_id: int) -> NotFound:
    return NotFound(f"No visitor {visitor_id} in account {account_id}.")


async def _lock_account(session: Session, account_id: int) -> None:
    """The first statement of a write under the account (see the module's docstring)."""
    found = await session.fetchval(f"SELECT id FROM accounts WHERE id = $1{LOCK_ACCOUNT[session.dialect]}", account_id)
    if found is None:
        raise account_not_found(account_id)


#: a visitor's row held until the transaction ends, by writes that must take turns per visitor
LOCK_VISITOR = {"sqlite": "", "postgresql": " FOR NO KEY UPDATE"}


async def _lock_visitor(session: Session, account_id: int, visitor_id: int) -> None:
    found = await session.fetchval(
        f"SELECT id FROM visitors WHERE id = $1 AND account_id = $2{LOCK_VISITOR[session.dialect]}",
        visitor_id, account_id,
    )
    if found is None:
        raise visitor_not_found(visitor_id, account_id)


# --------------------------------------------------------------------------- visitors


async def account_id_of_key(session: Session, account_key: str, *, lock: bool = False) -> int:
    """The account of a chat code's ``accountKey`` (NotFound for an unknown one); with
    ``lock``, its row locked as a write under it begins (``_lock_account``)."""
    account_id = None
    if type(account_key) is str and len(account_key) == 40:
        account_id = await session.fetchval(
            f"SELECT id FROM accounts WHERE account_key = $1{LOCK_ACCOUNT[session.dialect] if lock else ''}",
            account_key,
        )
    if account_id is None:
        raise NotFound("No account with this accountKey.")
    return int(account_id)


async def connect_visitor(
    session: Session, *, account_id: int, vid: str, details: Mapping[str, Any], now: int | None = None,
) -> tuple[Visitor, bool]:
    """A visitor arrives (``visitor.connect``) on the account: the visitor ``vid`` (which the
    realtime layer read from the visitor's signed token, or made for a new visitor), made now
    when the account has none by that vid; and whether it was made now. ``details`` (see
    ``visitor_columns``) are stored; a new visit starts (``visits`` grows by one,
    ``visit_started_ms`` is now, in milliseconds) when the visitor was away ``VISIT_GAP`` seconds or more
    (the realtime layer calls ``mark_visitor_seen`` when a connection ends, so that "away"
    is measured from then). A bad detail is left out rather than refused: nothing a host
    page sets may keep its visitor from connecting (``update_visitor`` refuses it)."""
    if not isinstance(vid, str) or not _VID.fullmatch(vid):
        raise invalid("vid", "must be 22 URL-safe characters")
    columns = visitor_columns(details, strict=False)
    await _lock_account(session, account_id)
    t = clock() if now is None else now
    ms = int(time.time() * 1000) if now is None else now * 1000
    visitor = await _returning_visitor(session, account_id, vid, columns, t, ms)
    if visitor is not None:
        return visitor, False
    row = {"vid": vid, "name": "", "email": "", "phone": "", "lang": "", "grp": "", "variables": "{}", "visits": 1,
           "chats": 0, "first_seen_at": t, "last_seen_at": t, "last_url": "", "last_title": "", "referrer": "",
           "user_agent": "", "visit_started_ms": ms, **columns}
    names = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(2, len(row) + 2))
    try:
        inserted = await session.fetchrow(
            f"INSERT INTO visitors (account_id, {names}) VALUES ($1, {placeholders})"
            f" ON CONFLICT (account_id, vid) DO NOTHING RETURNING {VISITOR_COLUMNS}",
            account_id, *row.values(),
        )
    except ForeignKeyViolation:
        raise account_not_found(account_id) from None
    if inserted is None:  # the same new visitor connected on another process meanwhile (a second tab)
        visitor = await _returning_visitor(session, account_id, vid, columns, t, ms)
        assert visitor is not None  # the conflicting row is committed, and a visitor is deleted only with its account
        return visitor, False
    return _visitor(inserted), True


async def _returning_visitor(
    session: Session, account_id: int, vid: str, columns: dict[str, Any], t: int, ms: int
) -> Visitor | None:
    sets = "".join(f", {name} = ${i}" for i, name in enumerate(columns, start=5))
    row = await session.fetchrow(
        f"UPDATE visitors SET visits = visits + CASE WHEN $3 - last_seen_at >= {VISIT_GAP} THEN 1 ELSE 0 END,"
        f" visit_started_ms = CASE WHEN $3 - last_seen_at >= {VISIT_GAP} THEN $4 ELSE visit_started_ms END,"
        f" last_seen_at = $3{sets} WHERE account_id = $1 AND vid = $2 RETURNING {VISITOR_COLUMNS}",
        account_id, vid, t, ms, *columns.values(),
    )
    return None if row is None else _visitor(row)


async def visitor_by_vid(session: Session, *, account_id: int, vid: str) -> Visitor | None:
    row = await session.fetchrow(
        f"SELECT {VISITOR_COLUMNS} FROM visitors WHERE account_id = $1 AND vid = $2", account_id, vid
    )
    return None if row is None else _visitor(row)


async def get_visitor(session: Session, *, account_id: int, visitor_id: int) -> Visitor:
    row = await session.fetchrow(
        f"SELECT {VISITOR_COLUMNS} FROM visitors WHERE id = $1 AND account_id = $2", visitor_id, account_id
    )
    if row is None:
        raise visitor_not_found(visitor_id, account_id)
    return _visitor(row)


async def update_visitor(
    session: Session, *, account_id: int, visitor_id: int, changes: Mapping[str, Any]
) -> Visitor:
    """``visitor.update`` (``smartsupp('name', ...)`` and the like): name, email, phone,
    lang, group and variables (flat or labelled; replaced as a whole)."""
    columns = visitor_columns(changes, reported=False)
    if not columns:
        return await get_visitor(session, account_id=account_id, visitor_id=visitor_id)
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=3))
    row = await session.fetchrow(
        f"UPDATE visitors SET {sets} WHERE id = $1 AND account_id = $2 RETURNING {VISITOR_COLUMNS}",
        visitor_id, account_id, *columns.values(),
    )
    if row is None:
        raise visitor_not_found(visitor_id, account_id)
    return _visitor(row)


async def mark_visitor_seen(session: Session, *, account_id: int, visitor_id: int, now: int | None = None) -> None:
    """The visitor was here until now (a connection ended): the next visit is counted from now."""
    await session.execute(
        "UPDATE visitors SET last_seen_at = $3 WHERE id = $1 AND account_id = $2",
        visitor_id, account_id, clock() if now is None else now,
    )


async def record_page_view(
    session: Session, *, account_id: int, visitor_id: int, url: str, title: str = "", referrer: str = "",
    now: int | None = None,
) -> PageView:
    """A page the visitor opened (``page.view``), kept as the visitor's last page too. What
    the browser reports is cut to the columns' sizes, never refused for its length."""
    reported = visitor_columns({"url": url, "title": title, "referrer": referrer})
    t = clock() if now is None else now
    await _lock_account(session, account_id)
    visitor = await session.fetchval(
        "UPDATE visitors SET last_url = $3, last_title = $4, last_seen_at = $5 WHERE id = $1 AND account_id = $2"
        " RETURNING id",
        visitor_id, account_id, reported.get("last_url", ""), reported.get("last_title", ""), t,
    )
    if visitor is None:
        raise visitor_not_found(visitor_id, account_id)
    row = await session.fetchrow(
        "INSERT INTO page_views (account_id, visitor_id, url, title, referrer, at) VALUES ($1, $2, $3, $4, $5, $6)"
        f" RETURNING {PAGE_VIEW_COLUMNS}",
        account_id, visitor_id, reported.get("last_url", ""), reported.get("last_title", ""),
        reported.get("referrer", ""), t,
    )
    return PageView(*row)  # type: ignore[misc]  # an INSERT ... RETURNING answers its row


async def page_views_of(session: Session, *, account_id: int, visitor_id: int, limit: int = 100) -> list[PageView]:
    """The visitor's last ``limit`` pages, oldest first."""
    rows = await session.fetch(
        f"SELECT {PAGE_VIEW_COLUMNS} FROM page_views WHERE visitor_id = $1 AND account_id = $2"
        " ORDER BY id DESC LIMIT $3",
        visitor_id, account_id, limit,
    )
    return [PageView(*row) for row in reversed(rows)]


# --------------------------------------------------------------------------- conversations


async def current_conversation(session: Session, *, account_id: int, visitor_id: int) -> Conversation | None:
    """The visitor's conversation that is not closed (the latest), or None."""
    row = await session.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE visitor_id = $1 AND account_id = $2"
        " AND status <> 'closed' ORDER BY id DESC LIMIT 1",
        visitor_id, account_id,
    )
    return None if row is None else _conversation(row)


async def open_or_get_conversation(
    session: Session, *, account_id: int, visitor_id: int, now: int | None = None, offline: bool = False
) -> tuple[Conversation, bool]:
    """The visitor's current conversation, or a new pending one; and whether it is new.

    The visitor's row is locked first (PostgreSQL), so two writes of one visitor at once (a
    message and its retry over a new connection, on another process) take turns: the second
    finds the conversation the first made, and its ``client_id`` there, rather than making a
    second conversation."""
    await _lock_account(session, account_id)
    await _lock_visitor(session, account_id, visitor_id)
    if not offline:
        current = await current_conversation(session, account_id=account_id, visitor_id=visitor_id)
        if current is not None:
            return current, False
    return await _new_conversation(session, account_id, visitor_id, clock() if now is None else now, offline), True


async def _new_conversation(session: Session, account_id: int, visitor_id: int, t: int, offline: bool) -> Conversation:
    row = await session.fetchrow(
        "INSERT INTO conversations (account_id, visitor_id, status, offline, rating_text, created_at, last_message_at,"
        " unread_by_visitor, unread_by_agents) SELECT v.account_id, v.id, 'pending', $3, '', $4, $4, 0, 0"
        f" FROM visitors v WHERE v.id = $1 AND v.account_id = $2 RETURNING {CONVERSATION_COLUMNS}",
        visitor_id, account_id, offline, t,
    )
    if row is None:
        raise visitor_not_found(visitor_id, account_id)
    return _conversation(row)


def _scoped(visitor_id: int | None) -> str:
    """The WHERE of a conversation by id ($1) in the account ($2), and of the visitor ($3) when given."""
    return "id = $1 AND account_id = $2" + ("" if visitor_id is None else " AND visitor_id = $3")


async def _conversation_of(
    session: Session, account_id: int, conversation_id: int, visitor_id: int | None
) -> Conversation:
    row = await session.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {_scoped(visitor_id)}",
        conversation_id, account_id, *(() if visitor_id is None else (visitor_id,)),
    )
    if row is None:
        raise conversation_not_found(conversation_id, account_id)
    return _conversation(row)


async def _scoped_update(
    session: Session, account_id: int, conversation_id: int, visitor_id: int | None, sets: str, *args: Any
) -> Conversation:
    """One UPDATE of a conversation of the account (and the visitor); ``sets`` numbers its
    parameters from $4."""
    row = await session.fetchrow(
        f"UPDATE conversations SET {sets} WHERE id = $1 AND account_id = $2 AND ($3 = 0 OR visitor_id = $3)"
        f" RETURNING {CONVERSATION_COLUMNS}",
        conversation_id, account_id, visitor_id or 0, *args,
    )
    if row is None:
        raise conversation_not_found(conversation_id, account_id)
    return _conversation(row)


async def find_conversation(session: Session, *, account_id: int, conversation_id: int,
                            visitor_id: int | None = None) -> Conversation:
    """A conversation of the account (and of the visitor, when given)."""
    return await _conversation_of(session, account_id, conversation_id, visitor_id)


async def _update_conversation(session: Session, conversation_id: int, sets: str, *args: Any) -> Conversation:
    row = await session.fetchrow(
        f"UPDATE conversations SET {sets} WHERE id = $1 RETURNING {CONVERSATION_COLUMNS}", conversation_id, *args
    )
    assert row is not None  # the caller read it in this transaction, under the account's lock
    return _conversation(row)


async def mark_read(
    session: Session, *, account_id: int, conversation_id: int, by: str, visitor_id: int | None = None
) -> Conversation:
    """The visitor (``by="visitor"``) or the agents (``"agent"``) have read everything so far."""
    check_choice(by, CLOSERS, "by")
    column = "unread_by_visitor" if by == "visitor" else "unread_by_agents"
    return await _scoped_update(session, account_id, conversation_id, visitor_id, f"{column} = 0")


async def close_conversation(
    session: Session, *, account_id: int, conversation_id: int, by: str, close_type: str | None = None,
    visitor_id: int | None = None, now: int | None = None,
) -> Closed:
    """Close the conversation (by the visitor or an agent; ``close_type`` defaults to
    ``visitor_close``/``agent_close``), leave a system message saying so, and count a
    finished chat for the visitor (``number_of_chats``). Closing a closed one changes nothing."""
    check_choice(by, CLOSERS, "by")
    close_type = close_type or f"{by}_close"
    if not _CLOSE_TYPE.fullmatch(close_type):
        raise invalid("closeType", "must be 1 to 16 lower-case letters or underscores")
    await _lock_account(session, account_id)
    conversation = await _conversation_of(session, account_id, conversation_id, visitor_id)
    if conversation.status == "closed":
        return Closed(conversation, None)
    t = clock() if now is None else now
    conversation = await _update_conversation(
        session, conversation_id, "status = 'closed', closed_at = $2, close_type = $3", t, close_type
    )
    await session.execute("UPDATE visitors SET chats = chats + 1 WHERE id = $1", conversation.visitor_id)
    message, _ = await _insert_message(session, conversation, "system", {"text": CLOSE_CODES[by]}, None, t)
    await events.closed(session, conversation, by=by)
    return Closed(conversation, message)


async def rate_conversation(
    session: Session, *, account_id: int, conversation_id: int, value: int, text: str = "",
    visitor_id: int | None = None,
) -> Conversation:
    """The visitor's rating: ``value`` 1 to 5, with an optional comment (1,000 code points)."""
    if type(value) is not int or value not in RATINGS:
        raise invalid("value", "must be an integer from 1 to 5")
    problem = text_problem(text, RATING_TEXT_MAX, multiline=True)
    if problem is not None:
        raise invalid("text", problem)
    conversation = await _scoped_update(session, account_id, conversation_id, visitor_id,
                                        "rating = $4, rating_text = $5", value, text)
    await events.rated(session, conversation)
    return conversation


# --------------------------------------------------------------------------- messages


async def _insert_message(
    session: Session, conversation: Conversation, kind: str, fields: dict[str, Any], client_id: str | None, t: int
) -> tuple[Message, bool]:
    """The message stored now, or (``client_id`` seen before in this conversation) the first
    one; and whether it was stored now."""
    row = {"kind": kind, **fields, "client_id": client_id, "created_at": t}
    names = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(3, len(row) + 3))
    inserted = await session.fetchrow(
        f"INSERT INTO messages (account_id, conversation_id, {names}) VALUES ($1, $2, {placeholders})"
        f" ON CONFLICT (conversation_id, client_id) DO NOTHING RETURNING {MESSAGE_COLUMNS}",
        conversation.account_id, conversation.id, *row.values(),
    )
    if inserted is not None:
        return _message(inserted), True
    first = await session.fetchrow(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND client_id = $2",
        conversation.id, client_id,
    )
    assert first is not None  # the conflict was with it
    return _message(first), False


async def _post(
    session: Session, conversation: Conversation, kind: str, fields: dict[str, Any], client_id: str | None,
    t: int, sets: str, *args: Any,
) -> Posted:
    message, created = await _insert_message(session, conversation, kind, fields, client_id, t)
    if created and sets:
        conversation = await _update_conversation(session, conversation.id, sets, *args)
    return Posted(message, conversation, created)


async def post_visitor_message(
    session: Session, *, account_id: int, visitor_id: int, text: str, client_id: str | None = None,
    offline: bool = False, now: int | None = None,
) -> Posted:
    """The visitor writes (``chat.message``): into the current conversation, or a new pending
    one. ``offline``: the offline form's message (nobody online), which needs the visitor's
    name and e-mail (set by ``visitor.update`` first) and opens a conversation marked
    offline (see ``store_offline_message``). A visitor's first message after a trigger's
    message is marked as the reply to that trigger (``replied_trigger_id``)."""
    if offline:
        visitor = await get_visitor(session, account_id=account_id, visitor_id=visitor_id)
        return await store_offline_message(session, account_id=account_id, visitor_id=visitor_id, name=visitor.name,
                                           email=visitor.email, text=text, client_id=client_id, now=now)
    text, client_id = check_text(text), check_client_id(client_id)
    t = clock() if now is None else now
    conversation, opened = await open_or_get_conversation(session, account_id=account_id, visitor_id=visitor_id,
                                                          now=t)
    replied = await session.fetchrow(
        "SELECT kind, trigger_id FROM messages WHERE conversation_id = $1 AND kind <> 'system'"
        " ORDER BY id DESC LIMIT 1",
        conversation.id,
    )
    fields: dict[str, Any] = {"text": text}
    if replied is not None and replied[0] == "trigger":
        fields["replied_trigger_id"] = replied[1]
    posted = await _post(session, conversation, "visitor", fields, client_id, t,
                         "last_message_at = $2, unread_by_agents = unread_by_agents + 1", t)
    if posted.created:
        await events.visitor_wrote(session, posted.message, posted.conversation, opened=opened)
    return posted


async def post_agent_message(
    session: Session, *, account_id: int, conversation_id: int, user_id: int, text: str,
    client_id: str | None = None, now: int | None = None,
) -> Posted:
    """An agent (a user of the account) writes: the conversation is open (reopened if it was
    closed) and assigned to the first agent who wrote; the visitor sees the user's nickname."""
    text, client_id = check_text(text), check_client_id(client_id)
    t = clock() if now is None else now
    await _lock_account(session, account_id)
    nickname = await _nickname(session, account_id, user_id)
    conversation = await _conversation_of(session, account_id, conversation_id, None)
    return await _post_as_agent(session, conversation, user_id, nickname, text, client_id, t)


async def post_agent_message_to_visitor(
    session: Session, *, account_id: int, visitor_id: int, user_id: int, text: str,
    client_id: str | None = None, now: int | None = None,
) -> Posted:
    """An agent writes to a visitor first (a proactive chat: the dashboard's visitors on the
    site now): into the visitor's current conversation, or a new one, which the message opens
    and assigns to the agent."""
    text, client_id = check_text(text), check_client_id(client_id)
    t = clock() if now is None else now
    await _lock_account(session, account_id)
    nickname = await _nickname(session, account_id, user_id)
    conversation, opened = await open_or_get_conversation(session, account_id=account_id, visitor_id=visitor_id,
                                                          now=t)
    return await _post_as_agent(session, conversation, user_id, nickname, text, client_id, t, opened=opened)


async def reply_to_visitor(
    session: Session, *, account_id: int, visitor_id: int, user_id: int, text: str,
    client_id: str | None = None, now: int | None = None,
) -> Posted:
    """An agent answers a visitor in the visitor's conversation that is not closed (the XMPP
    bridge: a chat message to a visitor's address). Conflict when the visitor has none: a
    conversation that ended is not reopened from an instant-messaging client, whose agent may be
    answering it hours later; the visitor starts the next one."""
    text, client_id = check_text(text), check_client_id(client_id)
    t = clock() if now is None else now
    await _lock_account(session, account_id)
    await _lock_visitor(session, account_id, visitor_id)
    nickname = await _nickname(session, account_id, user_id)
    conversation = await current_conversation(session, account_id=account_id, visitor_id=visitor_id)
    if conversation is None:
        raise Conflict("The visitor's conversation has ended; the visitor starts the next one.")
    return await _post_as_agent(session, conversation, user_id, nickname, text, client_id, t)


async def _nickname(session: Session, account_id: int, user_id: int) -> str:
    nickname = await session.fetchval(
        "SELECT nickname FROM users WHERE id = $1 AND account_id = $2", user_id, account_id
    )
    if nickname is None:
        raise NotFound(f"No user {user_id} in account {account_id}.")
    return str(nickname)


async def _post_as_agent(session: Session, conversation: Conversation, user_id: int, nickname: str, text: str,
                         client_id: str | None, t: int, opened: bool = False) -> Posted:
    posted = await _post(
        session, conversation, "agent", {"user_id": user_id, "agent_nick": nickname, "text": text}, client_id, t,
        "status = 'open', closed_at = NULL, close_type = NULL, assigned_user_id = COALESCE(assigned_user_id, $3),"
        " last_message_at = $2, unread_by_visitor = unread_by_visitor + 1", t, user_id,
    )
    if posted.created:
        await events.agent_wrote(session, posted.message, posted.conversation, opened=opened,
                                 joined=conversation.assigned_user_id is None)
    return posted


async def post_trigger_message(
    session: Session, *, account_id: int, visitor_id: int, trigger_id: int, agent_nick: str, text: str,
    client_id: str | None = None, now: int | None = None,
) -> Posted:
    """A trigger's message (shown as from ``agent_nick``), into the visitor's current
    conversation or a new pending one. A ``client_id`` (e.g. ``trigger-<id>-<visit>``) lets
    processes that race on one timer store it once."""
    text, client_id = check_text(text, "message"), check_client_id(client_id)
    problem = text_problem(agent_nick, NAME_MAX, required=True)
    if problem is not None:
        raise invalid("agent_nick", problem)
    t = clock() if now is None else now
    conversation, opened = await open_or_get_conversation(session, account_id=account_id, visitor_id=visitor_id,
                                                          now=t)
    posted = await _post(
        session, conversation, "trigger", {"trigger_id": trigger_id, "agent_nick": agent_nick, "text": text},
        client_id, t, "last_message_at = $2, unread_by_visitor = unread_by_visitor + 1", t,
    )
    if posted.created:
        await events.trigger_wrote(session, posted.conversation, opened=opened)
    return posted


async def post_system_message(
    session: Session, *, account_id: int, conversation_id: int, text: str, client_id: str | None = None,
    now: int | None = None,
) -> Posted:
    """An event in the conversation (``text`` is its code: ``agent.join``...), in the replay
    like any message; it counts as nobody's unread message."""
    text, client_id = check_text(text), check_client_id(client_id)
    await _lock_account(session, account_id)
    conversation = await _conversation_of(session, account_id, conversation_id, None)
    return await _post(session, conversation, "system", {"text": text}, client_id, clock() if now is None else now, "")


async def store_offline_message(
    session: Session, *, account_id: int, visitor_id: int, name: str, email: str, text: str,
    client_id: str | None = None, now: int | None = None,
) -> Posted:
    """The offline form (nobody online): a new conversation marked ``offline`` holding the
    message; the visitor's name and e-mail are kept. Delivered later (mail, hooks). With a
    ``client_id``, a retry answers the message stored the first time (in its conversation)."""
    problems = [FieldError(f, p) for f, p in (("name", detail_problem("name", name)),
                                               ("email", text_problem(email, EMAIL_MAX, required=True)
                                                or values.email_problem(email))) if p is not None]
    if problems:
        raise ValidationFailed(problems)
    text, client_id = check_text(text), check_client_id(client_id)
    t = clock() if now is None else now
    await _lock_account(session, account_id)
    await update_visitor(session, account_id=account_id, visitor_id=visitor_id, changes={"name": name, "email": email})
    if client_id is not None:
        await _lock_visitor(session, account_id, visitor_id)  # a retry on another process waits for this one
        first = await session.fetchrow(
            f"SELECT {', '.join('m.' + c for c in MESSAGE_COLUMNS.split(', '))} FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.visitor_id = $1 AND c.account_id = $2 AND c.offline AND m.client_id = $3",
            visitor_id, account_id, client_id,
        )
        if first is not None:
            message = _message(first)
            return Posted(message, await _conversation_of(session, account_id, message.conversation_id, None), False)
    conversation, _ = await open_or_get_conversation(session, account_id=account_id, visitor_id=visitor_id, now=t,
                                                     offline=True)
    posted = await _post(session, conversation, "visitor", {"text": text}, client_id, t,
                         "last_message_at = $2, unread_by_agents = unread_by_agents + 1", t)
    await mail.enqueue_offline_mails(session, account_id=account_id, visitor_id=visitor_id,  # new: a retry returned
                                     conversation_id=conversation.id, name=name, email=email, text=text)
    await events.offline_message(session, posted.message, posted.conversation)
    return posted


async def messages_after(
    session: Session, *, account_id: int, conversation_id: int, after_id: int = 0, limit: int = MESSAGES_MAX_PAGE,
    visitor_id: int | None = None,
) -> list[Message]:
    """The conversation's messages after the id ``after_id`` (0: from the first), oldest
    first, at most ``limit`` (1 to 1000): the replay a reconnecting client asks for."""
    if type(limit) is not int or not 1 <= limit <= MESSAGES_MAX_PAGE:
        raise invalid("limit", f"must be an integer from 1 to {MESSAGES_MAX_PAGE}")
    if type(after_id) is not int or after_id < 0:
        raise invalid("after", "must be a message id (0: from the first message)")
    if visitor_id is not None:
        await _conversation_of(session, account_id, conversation_id, visitor_id)
    rows = await session.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND account_id = $2 AND id > $3"
        " ORDER BY id LIMIT $4",
        conversation_id, account_id, after_id, limit,
    )
    return [_message(row) for row in rows]


# --------------------------------------------------------------------------- the realtime side's reads


async def latest_conversation(session: Session, *, account_id: int, visitor_id: int) -> Conversation | None:
    """The visitor's latest conversation, whatever its status (the one a rating is for)."""
    row = await session.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE visitor_id = $1 AND account_id = $2"
        " ORDER BY id DESC LIMIT 1",
        visitor_id, account_id,
    )
    return None if row is None else _conversation(row)


async def assign_conversation(
    session: Session, *, account_id: int, conversation_id: int, user_id: int | None
) -> Conversation:
    """An agent takes the conversation (``user_id``, a user of the account), or it is left
    unassigned (None)."""
    await _lock_account(session, account_id)
    if user_id is not None and await session.fetchval(
        "SELECT id FROM users WHERE id = $1 AND account_id = $2", user_id, account_id
    ) is None:
        raise NotFound(f"No user {user_id} in account {account_id}.")
    before = None if user_id is None else await _conversation_of(session, account_id, conversation_id, None)
    conversation = await _scoped_update(session, account_id, conversation_id, None, "assigned_user_id = $4", user_id)
    if before is not None and before.assigned_user_id != user_id:  # another agent joins
        await events.agent_assigned(session, conversation)
    return conversation


_MESSAGE_COLUMNS_OF_M = ", ".join("m." + column for column in MESSAGE_COLUMNS.split(", "))


async def visitor_messages_after(
    session: Session, *, account_id: int, visitor_id: int, after: int | None, limit: int
) -> list[Message]:
    """A reconnecting visitor's replay, oldest first, at most ``limit``: the messages of its
    conversations after the id ``after``; with ``after`` None (a client that saw nothing),
    the last ``limit`` of its current conversation."""
    if after is None:
        current = await current_conversation(session, account_id=account_id, visitor_id=visitor_id)
        if current is None:
            return []
        rows = await session.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND account_id = $2"
            " ORDER BY id DESC LIMIT $3",
            current.id, account_id, limit,
        )
        return [_message(row) for row in reversed(rows)]
    rows = await session.fetch(
        f"SELECT {_MESSAGE_COLUMNS_OF_M} FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE c.visitor_id = $1 AND c.account_id = $2 AND m.id > $3 ORDER BY m.id LIMIT $4",
        visitor_id, account_id, after, limit,
    )
    return [_message(row) for row in rows]


async def account_messages_after(session: Session, *, account_id: int, after: int, limit: int) -> list[Message]:
    """A reconnecting agent's replay: the account's messages after the id ``after``, oldest first."""
    rows = await session.fetch(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE account_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        account_id, after, limit,
    )
    return [_message(row) for row in rows]


#: open conversations an agent's connect lists at most (the newest)
OPEN_CONVERSATIONS_MAX = 1000


async def open_conversations(
    session: Session, *, account_id: int, limit: int = OPEN_CONVERSATIONS_MAX
) -> list[tuple[Conversation, Message | None]]:
    """The account's pending and open conversations, the latest ``limit``, oldest first, each
    with its last message."""
    rows = await session.fetch(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE account_id = $1 AND status <> 'closed'"
        " ORDER BY id DESC LIMIT $2",
        account_id, limit,
    )
    found = [_conversation(row) for row in reversed(rows)]
    last: dict[int, Message] = {}
    if found:
        ids = [c.id for c in found]
        placeholders = ", ".join(f"${i}" for i in range(2, len(ids) + 2))
        for row in await session.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE account_id = $1 AND id IN (SELECT max(id) FROM messages"
            f" WHERE conversation_id IN ({placeholders}) GROUP BY conversation_id)",
            account_id, *ids,
        ):
            message = _message(row)
            last[message.conversation_id] = message
    return [(c, last.get(c.id)) for c in found]


async def vids_of(session: Session, *, account_id: int, visitor_ids: list[int]) -> dict[int, str]:
    """The vids of the account's visitors by their ids."""
    if not visitor_ids:
        return {}
    placeholders = ", ".join(f"${i}" for i in range(2, len(visitor_ids) + 2))
    rows = await session.fetch(
        f"SELECT id, vid FROM visitors WHERE account_id = $1 AND id IN ({placeholders})", account_id, *visitor_ids
    )
    return {row[0]: row[1] for row in rows}


async def fired_triggers(session: Session, *, account_id: int, visitor_id: int) -> list[int]:
    """The triggers that have written to the visitor (a trigger marked ``only_once`` writes no more)."""
    rows = await session.fetch(
        "SELECT DISTINCT m.trigger_id FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE c.visitor_id = $1 AND c.account_id = $2 AND m.kind = 'trigger'",
        visitor_id, account_id,
    )
    return sorted(row[0] for row in rows)


async def pages_since(session: Session, *, account_id: int, visitor_id: int, since: int) -> int:
    """The pages the visitor opened at or after ``since`` (the start of its visit)."""
    return int(await session.fetchval(
        "SELECT count(*) FROM page_views WHERE visitor_id = $1 AND account_id = $2 AND at >= $3",
        visitor_id, account_id, since,
    ))


async def agent_card(session: Session, *, account_id: int, user_id: int) -> dict[str, Any] | None:
    """``{"id", "nickname", "avatar"}`` of a user of the account (what visitors see of an agent), else None."""
    row = await session.fetchrow("SELECT id, nickname, avatar FROM users WHERE id = $1 AND account_id = $2",
                                 user_id, account_id)
    return None if row is None else {"id": row[0], "nickname": row[1], "avatar": row[2] or None}


# --------------------------------------------------------------------------- the partner's reads


async def get_conversation(session: Session, *, partner_id: int, account_id: int, conversation_id: int) -> Conversation:
    """A conversation of one of the partner's accounts (NotFound for anyone else's)."""
    row = await session.fetchrow(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND account_id = $2 AND {OWNED}",
        conversation_id, account_id, partner_id,
    )
    if row is None:
        raise conversation_not_found(conversation_id, account_id)
    return _conversation(row)


async def list_conversations(
    session: Session, *, partner_id: int, account_id: int, after: int, limit: int, status: str | None = None,
    since: int | None = None, until: int | None = None,
) -> tuple[list[Conversation], bool]:
    """Up to ``limit`` of the account's conversations after the id ``after``, oldest first,
    and whether more follow; ``status``, and ``since``/``until`` (inclusive) on the last
    message's time, filter them."""
    where = ["account_id = $2", OWNED, "id > $1"]
    args: list[Any] = [after, account_id, partner_id]
    for condition, value in (("status = ${}", status), ("last_message_at >= ${}", since),
                             ("last_message_at <= ${}", until)):
        if value is not None:
            args.append(value)
            where.append(condition.format(len(args)))
    args.append(limit + 1)
    rows = await session.fetch(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE {' AND '.join(where)} ORDER BY id LIMIT ${len(args)}",
        *args,
    )
    if not rows and await session.fetchval(
        "SELECT 1 FROM accounts WHERE id = $1 AND partner_id = $2", account_id, partner_id
    ) is None:
        raise account_not_found(account_id)
    return [_conversation(row) for row in rows[:limit]], len(rows) > limit


# --------------------------------------------------------------------------- retention

PURGE_SLICE = 500


async def purge_before(session: Session, *, before: int) -> int:
    """Delete at most ``PURGE_SLICE`` rows of each kind (call again, in a new transaction,
    while it answers that many): conversations closed before ``before`` (their messages go
    with them), page views older than it, and visitors last seen before it who have no
    conversation left (their page views go with them). Answers the most rows one kind
    lost. A slice stays well within OPENSUPP_DB_STATEMENT_TIMEOUT, and SQLite's writer lock
    is never held for long."""
    most = 0
    for sql in (
        "DELETE FROM conversations WHERE id IN (SELECT id FROM conversations WHERE closed_at < $1 LIMIT $2)",
        "DELETE FROM page_views WHERE id IN (SELECT id FROM page_views WHERE at < $1 LIMIT $2)",
        "DELETE FROM visitors WHERE id IN (SELECT v.id FROM visitors v WHERE v.last_seen_at < $1"
        " AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.visitor_id = v.id) LIMIT $2)",
    ):
        most = max(most, await session.execute(sql, before, PURGE_SLICE))
    return most
