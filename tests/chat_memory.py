"""An in-memory ChatCore (opensupp.chat.transport) for the transport's tests and the bench: the
chat service's answers in the protocol's wire shapes, kept in dicts. The real service (over the
database) replaces it in the server; this one exists so that the transport's framing, acks,
replay, limits and fan-out are tested with a real server and real sockets on their own.

One instance can serve several transports (several "processes" sharing one "database")."""

from __future__ import annotations

import itertools
import time
from typing import Any

from opensupp.chat.transport import Page
from opensupp.errors import Conflict
from opensupp.timeutil import iso

Json = dict[str, Any]


class MemoryCore:
    def __init__(self) -> None:
        self.accounts: dict[str, int] = {}
        self.open_hours: dict[int, bool] = {}
        self.users: dict[tuple[int, int], Json] = {}
        self.visitors: dict[tuple[int, str], Json] = {}
        self.conversations: dict[int, Json] = {}
        self.messages: list[Json] = []
        self.by_client_id: dict[tuple[int, str], Json] = {}
        self.page_views: list[tuple[int, str, str | None]] = []
        self.left: list[tuple[int, str]] = []
        self._ids = itertools.count(1)
        self._conversation_ids = itertools.count(1)

    # ------------------------------------------------------------------ set-up (tests)

    def add_account(self, account_id: int, key: str, open_now: bool = True) -> None:
        self.accounts[key] = account_id
        self.open_hours[account_id] = open_now

    def add_user(self, account_id: int, user_id: int, nickname: str) -> None:
        self.users[(account_id, user_id)] = {"id": user_id, "nickname": nickname, "avatar": None}

    # ------------------------------------------------------------------ ChatCore

    async def account_by_key(self, key: str) -> int | None:
        return self.accounts.get(key)

    async def office_hours_open(self, account_id: int) -> bool:
        return self.open_hours.get(account_id, False)

    async def connect_visitor(self, account_id: int, vid: str, values: Json, page: Page) -> tuple[Json, Json | None]:
        visitor = self.visitors.get((account_id, vid))
        if visitor is None:
            visitor = self.visitors[(account_id, vid)] = {
                "vid": vid, "name": None, "email": None, "phone": None, "lang": None, "group": None,
                "variables": {}, "visits": 0, "chats": 0, "firstSeenAt": iso(int(time.time()))}
        visitor["visits"] += 1
        visitor.update(values)
        self._page(account_id, vid, page)
        return dict(visitor), self._open(account_id, vid)

    async def update_visitor(self, account_id: int, vid: str, values: Json) -> Json:
        visitor = self.visitors[(account_id, vid)]
        visitor.update(values)
        return dict(visitor)

    async def page_view(self, account_id: int, vid: str, page: Page) -> Json:
        self._page(account_id, vid, page)
        return dict(self.visitors[(account_id, vid)])

    async def visitor_left(self, account_id: int, vid: str) -> None:
        self.left.append((account_id, vid))

    async def post_visitor_message(self, account_id: int, vid: str, text: str, client_id: str,
                                   offline: bool) -> tuple[Json, Json]:
        conversation = self._open(account_id, vid)
        if conversation is None:
            conversation = self._new_conversation(account_id, vid, offline)
        return self._post(conversation, "visitor", text, client_id, None)

    async def post_agent_message(self, account_id: int, user_id: int, conversation_id: int, text: str,
                                 client_id: str) -> tuple[Json, Json] | None:
        conversation = self.conversations.get(conversation_id)
        if conversation is None or conversation["accountId"] != account_id:
            return None
        if conversation["status"] == "closed":
            raise Conflict("The conversation is closed.")
        conversation["status"] = "open"
        return self._post(conversation, "agent", text, client_id, user_id)

    async def messages_after(self, account_id: int, after: int | None, limit: int,
                             vid: str | None = None) -> list[Json]:
        if vid is not None and after is None:
            conversation = self._open(account_id, vid)
            if conversation is None:
                return []
            return [m for m in self.messages if m["conversationId"] == conversation["id"]][-limit:]
        if after is None:
            return []
        found = []
        for message in self.messages:
            conversation = self.conversations[message["conversationId"]]
            if message["id"] > after and conversation["accountId"] == account_id and (
                    vid is None or conversation["vid"] == vid):
                found.append(message)
        return found[:limit]

    async def conversation(self, account_id: int, conversation_id: int) -> Json | None:
        conversation = self.conversations.get(conversation_id)
        return self._wire(conversation) if conversation and conversation["accountId"] == account_id else None

    async def open_conversations(self, account_id: int) -> list[Json]:
        found = []
        for conversation in self.conversations.values():
            if conversation["accountId"] == account_id and conversation["status"] != "closed":
                last = [m for m in self.messages if m["conversationId"] == conversation["id"]][-1:]
                found.append(self._wire(conversation) | {"lastMessage": last[0] if last else None})
        return found

    async def read(self, account_id: int, last_message_id: int | None, *, vid: str | None = None,
                   conversation_id: int | None = None, user_id: int | None = None) -> Json | None:
        if vid is not None:
            conversation = self._open(account_id, vid)
            if conversation is None:
                return None
            self.conversations[conversation["id"]]["unreadByVisitor"] = 0
            return self._wire(self.conversations[conversation["id"]])
        found = self.conversations.get(conversation_id or 0)
        if found is None or found["accountId"] != account_id:
            return None
        found["unreadByAgents"] = 0
        return self._wire(found)

    async def close_conversation(self, account_id: int, *, vid: str | None = None,
                                 conversation_id: int | None = None, user_id: int | None = None) -> Json | None:
        if vid is not None:
            wire = self._open(account_id, vid)
            conversation = self.conversations[wire["id"]] if wire else None
        else:
            conversation = self.conversations.get(conversation_id or 0)
        if conversation is None or conversation["accountId"] != account_id or conversation["status"] == "closed":
            return None
        conversation["status"] = "closed"
        conversation["closedAt"] = iso(int(time.time()))
        return self._wire(conversation)

    async def rate_conversation(self, account_id: int, vid: str, value: int, text: str | None) -> Json | None:
        mine = [c for c in self.conversations.values() if c["accountId"] == account_id and c["vid"] == vid]
        if not mine:
            return None
        mine[-1]["rating"] = {"value": value, "text": text}
        return self._wire(mine[-1])

    async def assign_conversation(self, account_id: int, conversation_id: int, user_id: int | None) -> Json | None:
        conversation = self.conversations.get(conversation_id)
        if conversation is None or conversation["accountId"] != account_id:
            return None
        if user_id is not None and (account_id, user_id) not in self.users:
            return None
        conversation["assignedUserId"] = user_id
        return self._wire(conversation)

    async def agent(self, account_id: int, user_id: int) -> Json | None:
        found = self.users.get((account_id, user_id))
        return dict(found) if found else None

    # ------------------------------------------------------------------ inside

    def _page(self, account_id: int, vid: str, page: Page) -> None:
        visitor = self.visitors[(account_id, vid)]
        visitor.update({"pageUrl": page.url, "pageTitle": page.title, "referrer": page.referrer,
                        "domain": page.origin, "userAgent": page.user_agent})
        self.page_views.append((account_id, vid, page.url))

    def _open(self, account_id: int, vid: str) -> Json | None:
        for c in self.conversations.values():
            if (c["accountId"], c["vid"]) == (account_id, vid) and c["status"] != "closed":
                return self._wire(c)
        return None

    def _new_conversation(self, account_id: int, vid: str, offline: bool) -> Json:
        now = iso(int(time.time()))
        conversation = {"id": next(self._conversation_ids), "accountId": account_id, "vid": vid, "status": "pending",
                        "offline": offline, "assignedUserId": None, "rating": None, "createdAt": now,
                        "lastMessageAt": now, "closedAt": None, "unreadByVisitor": 0, "unreadByAgents": 0}
        self.conversations[conversation["id"]] = conversation
        self.visitors[(account_id, vid)]["chats"] += 1
        return self._wire(conversation)

    def _post(self, wire: Json, kind: str, text: str, client_id: str, user_id: int | None) -> tuple[Json, Json]:
        conversation = self.conversations[wire["id"]]
        first = self.by_client_id.get((conversation["id"], client_id))
        if first is not None:
            return first, self._wire(conversation)
        message = {"id": next(self._ids), "conversationId": conversation["id"], "kind": kind, "text": text,
                   "clientId": client_id, "userId": user_id,
                   "agentNick": self.users[(conversation["accountId"], user_id)]["nickname"] if user_id else None,
                   "triggerId": None, "createdAt": iso(int(time.time()))}
        self.messages.append(message)
        self.by_client_id[(conversation["id"], client_id)] = message
        conversation["lastMessageAt"] = message["createdAt"]
        conversation["unreadByAgents" if kind == "visitor" else "unreadByVisitor"] += 1
        return message, self._wire(conversation)

    @staticmethod
    def _wire(conversation: Json) -> Json:
        return {k: v for k, v in conversation.items() if k != "accountId"}
