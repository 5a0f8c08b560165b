"""The chat service behind the realtime transport: ``DatabaseCore`` implements the transport's
``ChatCore`` (opensupp.chat.transport) over the database, through chat/service.py, and answers
in the protocol's wire shapes (docs/chat-protocol.md 2.2).

Each call is one unit of work: a write in one transaction, a read on committed data. The
transport speaks of visitors by ``vid`` (the id their signed token carries); the service by
row id: the adapter keeps the mapping of the visitors it has seen (bounded; an id never
changes; a visitor's row goes only with its account or by the retention purge, after which
its calls answer not_found until it connects again, which makes it again and maps the new id).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from opensupp.chat import service
from opensupp.chat.models import Conversation, Message, Visitor
from opensupp.errors import NotFound
from opensupp.mail import service as mail
from opensupp.officehours.service import office_hours_open_at
from opensupp.signin import service as signins
from opensupp.timeutil import iso

if TYPE_CHECKING:
    from opensupp.chat.transport import Page
    from opensupp.db import Database, Session

Json = dict[str, Any]

#: visitors whose row id the adapter remembers (least recently added out first)
KNOWN_VISITORS = 100_000


# --------------------------------------------------------------------------- wire shapes


def _or_none(text: str) -> str | None:
    return text or None


def visitor_wire(v: Visitor, domain: str | None = None) -> Json:
    """The visitor as agents see it (section 2.2; the visitor's own view is a subset)."""
    return {
        "vid": v.vid, "name": _or_none(v.name), "email": _or_none(v.email), "phone": _or_none(v.phone),
        "lang": _or_none(v.lang), "group": _or_none(v.group), "variables": v.variables, "visits": v.visits,
        "chats": v.chats, "firstSeenAt": iso(v.first_seen_at), "lastSeenAt": iso(v.last_seen_at),
        "pageUrl": _or_none(v.last_url), "pageTitle": _or_none(v.last_title), "referrer": _or_none(v.referrer),
        "userAgent": _or_none(v.user_agent), "domain": domain,
    }


def conversation_wire(c: Conversation, vid: str) -> Json:
    return {
        "id": c.id, "vid": vid, "status": c.status, "offline": c.offline, "assignedUserId": c.assigned_user_id,
        "rating": None if c.rating is None else {"value": c.rating, "text": c.rating_text or None},
        "createdAt": iso(c.created_at), "lastMessageAt": iso(c.last_message_at),
        "closedAt": None if c.closed_at is None else iso(c.closed_at),
        "unreadByVisitor": c.unread_by_visitor, "unreadByAgents": c.unread_by_agents,
    }


def message_wire(m: Message) -> Json:
    return {"id": m.id, "conversationId": m.conversation_id, "kind": m.kind, "text": m.text, "clientId": m.client_id,
            "userId": m.user_id, "agentNick": m.agent_nick, "triggerId": m.trigger_id, "createdAt": iso(m.created_at)}


def _details(values: Json, page: Page | None) -> Json:
    details = dict(values)
    if page is not None:
        for name, value in (("url", page.url), ("title", page.title), ("referrer", page.referrer),
                            ("user_agent", page.user_agent)):
            if value is not None:
                details[name] = value
    return details


# --------------------------------------------------------------------------- the adapter


class DatabaseCore:
    """``ChatCore`` over the database (see the module's docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._ids: dict[tuple[int, str], int] = {}  # (account, vid) -> the visitor's row id
        self._vids: dict[int, str] = {}  # the visitor's row id -> vid

    # ------------------------------------------------------------------ visitors' ids

    def _know(self, visitor: Visitor) -> None:
        if len(self._ids) >= KNOWN_VISITORS:
            (account_id, vid), visitor_id = next(iter(self._ids.items()))
            del self._ids[(account_id, vid)]
            self._vids.pop(visitor_id, None)
        self._ids[(visitor.account_id, visitor.vid)] = visitor.id
        self._vids[visitor.id] = visitor.vid

    async def _visitor_id(self, session: Session, account_id: int, vid: str) -> int:
        visitor_id = self._ids.get((account_id, vid))
        if visitor_id is None:
            visitor = await service.visitor_by_vid(session, account_id=account_id, vid=vid)
            if visitor is None:
                raise NotFound("No such visitor (reconnect).")
            self._know(visitor)
            visitor_id = visitor.id
        return visitor_id

    async def _vid(self, session: Session, account_id: int, visitor_id: int) -> str:
        vid = self._vids.get(visitor_id)
        if vid is None:
            found = await service.vids_of(session, account_id=account_id, visitor_ids=[visitor_id])
            vid = found.get(visitor_id, "")
        return vid

    async def _current(self, session: Session, account_id: int, vid: str) -> tuple[int, Conversation | None]:
        """The visitor's row id and its conversation that is not closed (None: it has none)."""
        visitor_id = await self._visitor_id(session, account_id, vid)
        return visitor_id, await service.current_conversation(session, account_id=account_id, visitor_id=visitor_id)

    async def _wire(self, session: Session, c: Conversation) -> Json:
        return conversation_wire(c, await self._vid(session, c.account_id, c.visitor_id))

    # ------------------------------------------------------------------ ChatCore: the visitor's side

    async def account_by_key(self, key: str) -> int | None:
        async with self.db.read() as session:
            try:
                return await service.account_id_of_key(session, key)
            except NotFound:
                return None

    async def office_hours_open(self, account_id: int) -> bool:
        async with self.db.read() as session:
            return await office_hours_open_at(session, account_id=account_id, at=int(time.time()))

    async def connect_visitor(self, account_id: int, vid: str, values: Json, page: Page) -> tuple[Json, Json | None]:
        async with self.db.transaction() as session:
            visitor, _ = await service.connect_visitor(session, account_id=account_id, vid=vid,
                                                       details=_details(values, page))
            if page.url:
                await service.record_page_view(session, account_id=account_id, visitor_id=visitor.id, url=page.url,
                                               title=page.title or "", referrer=page.referrer or "")
            conversation = await service.current_conversation(session, account_id=account_id, visitor_id=visitor.id)
        self._know(visitor)
        return (visitor_wire(visitor, page.origin),
                None if conversation is None else conversation_wire(conversation, visitor.vid))

    async def visitor(self, account_id: int, vid: str) -> Visitor | None:
        """The stored visitor (the triggers' context reads it)."""
        async with self.db.read() as session:
            return await service.visitor_by_vid(session, account_id=account_id, vid=vid)

    async def update_visitor(self, account_id: int, vid: str, values: Json) -> Json:
        async with self.db.transaction() as session:
            visitor_id = await self._visitor_id(session, account_id, vid)
            visitor = await service.update_visitor(session, account_id=account_id, visitor_id=visitor_id,
                                                   changes=values)
        return visitor_wire(visitor)

    async def page_view(self, account_id: int, vid: str, page: Page) -> Json:
        async with self.db.transaction() as session:
            visitor_id = await self._visitor_id(session, account_id, vid)
            await service.record_page_view(session, account_id=account_id, visitor_id=visitor_id, url=page.url or "",
                                           title=page.title or "", referrer=page.referrer or "")
            visitor = await service.get_visitor(session, account_id=account_id, visitor_id=visitor_id)
        return visitor_wire(visitor, page.origin)

    async def visitor_left(self, account_id: int, vid: str) -> None:
        """The visitor's last connection on this process ended: its next visit counts from now."""
        async with self.db.transaction() as session:
            visitor_id = self._ids.get((account_id, vid))
            if visitor_id is not None:
                await service.mark_visitor_seen(session, account_id=account_id, visitor_id=visitor_id)

    async def post_visitor_message(self, account_id: int, vid: str, text: str, client_id: str,
                                   offline: bool) -> tuple[Json, Json]:
        async with self.db.transaction() as session:
            visitor_id = await self._visitor_id(session, account_id, vid)
            posted = await service.post_visitor_message(session, account_id=account_id, visitor_id=visitor_id,
                                                        text=text, client_id=client_id, offline=offline)
        return message_wire(posted.message), conversation_wire(posted.conversation, vid)

    async def post_trigger_message(self, account_id: int, vid: str, trigger_id: int, agent_nick: str, text: str,
                                   client_id: str) -> tuple[Json, Json, bool]:
        """A trigger's message to the visitor; and whether it was stored now (a process that
        raced on the same timer answers the first one's message, and publishes nothing)."""
        async with self.db.transaction() as session:
            visitor_id = await self._visitor_id(session, account_id, vid)
            posted = await service.post_trigger_message(session, account_id=account_id, visitor_id=visitor_id,
                                                        trigger_id=trigger_id, agent_nick=agent_nick, text=text,
                                                        client_id=client_id)
        return message_wire(posted.message), conversation_wire(posted.conversation, vid), posted.created

    async def messages_after(self, account_id: int, after: int | None, limit: int,
                             vid: str | None = None) -> list[Json]:
        async with self.db.read() as session:
            if vid is not None:
                try:
                    visitor_id = await self._visitor_id(session, account_id, vid)
                except NotFound:
                    return []
                found = await service.visitor_messages_after(session, account_id=account_id, visitor_id=visitor_id,
                                                             after=after, limit=limit)
            elif after is None:
                return []
            else:
                found = await service.account_messages_after(session, account_id=account_id, after=after,
                                                             limit=limit)
        return [message_wire(m) for m in found]

    async def read(self, account_id: int, last_message_id: int | None, *, vid: str | None = None,
                   conversation_id: int | None = None, user_id: int | None = None) -> Json | None:
        async with self.db.transaction() as session:
            try:
                if vid is not None:
                    visitor_id, current = await self._current(session, account_id, vid)
                    if current is None:
                        return None
                    conversation = await service.mark_read(session, account_id=account_id, conversation_id=current.id,
                                                           by="visitor", visitor_id=visitor_id)
                    return conversation_wire(conversation, vid)
                if conversation_id is None:
                    return None
                conversation = await service.mark_read(session, account_id=account_id,
                                                       conversation_id=conversation_id, by="agent")
                return await self._wire(session, conversation)
            except NotFound:
                return None

    async def close_conversation(self, account_id: int, *, vid: str | None = None,
                                 conversation_id: int | None = None, user_id: int | None = None) -> Json | None:
        async with self.db.transaction() as session:
            try:
                visitor_id = None
                if vid is not None:
                    visitor_id, current = await self._current(session, account_id, vid)
                    if current is None:
                        return None
                    conversation_id = current.id
                if conversation_id is None:
                    return None
                closed = await service.close_conversation(
                    session, account_id=account_id, conversation_id=conversation_id,
                    by="visitor" if vid is not None else "agent", visitor_id=visitor_id)
            except NotFound:
                return None
            if closed.message is None:  # closed already: nothing changed
                return None
            return await self._wire(session, closed.conversation)

    async def rate_conversation(self, account_id: int, vid: str, value: int, text: str | None) -> Json | None:
        async with self.db.transaction() as session:
            visitor_id = await self._visitor_id(session, account_id, vid)
            latest = await service.latest_conversation(session, account_id=account_id, visitor_id=visitor_id)
            if latest is None:
                return None
            conversation = await service.rate_conversation(session, account_id=account_id, conversation_id=latest.id,
                                                           value=value, text=text or "", visitor_id=visitor_id)
        return conversation_wire(conversation, vid)

    async def send_transcript(self, account_id: int, vid: str, email: str | None, lang: str | None) -> Json:
        async with self.db.transaction() as session:
            visitor_id = await self._visitor_id(session, account_id, vid)
            delivery = await mail.enqueue_transcript(session, account_id=account_id, visitor_id=visitor_id,
                                                     email=email, lang=lang)
        payload = orjson.loads(delivery.payload)
        return {"conversationId": payload["conversation_id"], "email": payload["to"]}

    # ------------------------------------------------------------------ ChatCore: the agents' side

    async def post_agent_message(self, account_id: int, user_id: int, conversation_id: int, text: str,
                                 client_id: str) -> tuple[Json, Json] | None:
        async with self.db.transaction() as session:
            try:
                posted = await service.post_agent_message(session, account_id=account_id,
                                                          conversation_id=conversation_id, user_id=user_id,
                                                          text=text, client_id=client_id)
            except NotFound:
                return None
            wire = await self._wire(session, posted.conversation)
        return message_wire(posted.message), wire

    async def post_agent_message_to_visitor(self, account_id: int, user_id: int, vid: str, text: str,
                                            client_id: str) -> tuple[Json, Json] | None:
        async with self.db.transaction() as session:
            try:
                visitor_id = await self._visitor_id(session, account_id, vid)
                posted = await service.post_agent_message_to_visitor(session, account_id=account_id,
                                                                     visitor_id=visitor_id, user_id=user_id,
                                                                     text=text, client_id=client_id)
            except NotFound:
                return None
        return message_wire(posted.message), conversation_wire(posted.conversation, vid)

    async def reply_to_visitor(self, account_id: int, user_id: int, vid: str, text: str,
                               client_id: str | None) -> tuple[Json, Json]:
        """An agent's answer in the visitor's conversation that is not closed (service.reply_to_visitor):
        NotFound (no such visitor in the account), Conflict (no such conversation), ValidationFailed."""
        async with self.db.transaction() as session:
            visitor_id = await self._visitor_id(session, account_id, vid)
            posted = await service.reply_to_visitor(session, account_id=account_id, visitor_id=visitor_id,
                                                    user_id=user_id, text=text, client_id=client_id)
        return message_wire(posted.message), conversation_wire(posted.conversation, vid)

    async def conversation(self, account_id: int, conversation_id: int) -> Json | None:
        async with self.db.read() as session:
            try:
                found = await service.find_conversation(session, account_id=account_id,
                                                        conversation_id=conversation_id)
            except NotFound:
                return None
            return await self._wire(session, found)

    async def open_conversations(self, account_id: int) -> list[Json]:
        async with self.db.read() as session:
            found = await service.open_conversations(session, account_id=account_id)
            vids = await service.vids_of(session, account_id=account_id,
                                         visitor_ids=sorted({c.visitor_id for c, _ in found}))
        return [conversation_wire(c, vids.get(c.visitor_id, "")) | {
            "lastMessage": None if last is None else message_wire(last)} for c, last in found]

    async def assign_conversation(self, account_id: int, conversation_id: int, user_id: int | None) -> Json | None:
        async with self.db.transaction() as session:
            try:
                conversation = await service.assign_conversation(session, account_id=account_id,
                                                                 conversation_id=conversation_id, user_id=user_id)
            except NotFound:
                return None
            return await self._wire(session, conversation)

    async def agent(self, account_id: int, user_id: int) -> Json | None:
        async with self.db.read() as session:
            return await service.agent_card(session, account_id=account_id, user_id=user_id)

    async def signed_in(self, account_id: int, user_id: int, signin: str) -> bool:
        async with self.db.read() as session:
            return await signins.holds(session, account_id=account_id, user_id=user_id, signin=signin)


__all__ = ("DatabaseCore", "conversation_wire", "message_wire", "visitor_wire")
