"""Typed answers. Attribute names are snake_case; ``raw`` keeps the JSON as answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Account:
    id: str
    title: str
    lang: str
    account_key: str
    created_at: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Account:
        return cls(d["id"], d["title"], d["lang"], d["accountKey"], d["createdAt"], d)


@dataclass(frozen=True)
class User:
    id: str
    role: str
    email: str
    fullname: str
    nickname: str
    avatar: str
    note: str
    lang: str
    created_at: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> User:
        return cls(d["id"], d["role"], d["email"], d["fullname"], d["nickname"], d["avatar"], d["note"],
                   d["lang"], d["createdAt"], d)


@dataclass(frozen=True)
class Trigger:
    id: str
    active: bool
    name: str
    description: str
    event: str
    only_once: bool
    constraints: str
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trigger:
        return cls(d["id"], d["active"], d["name"], d["description"], d["event"], d["only_once"],
                   d["constraints"], d["conditions"], d["actions"], d)


@dataclass(frozen=True)
class OfficeHours:
    active: bool
    days: list[int]
    timezone: int | float | str
    config: list[dict[str, Any]]
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # holidays: [{"date", "times"}]
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OfficeHours:
        return cls(d["active"], d["days"], d["timezone"], d["config"], d.get("exceptions", []), d)


@dataclass(frozen=True)
class OfflineEmail:
    id: str
    email: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OfflineEmail:
        return cls(d["id"], d["email"], d)


@dataclass(frozen=True)
class Hook:
    id: str
    name: str
    config: dict[str, Any]
    active: bool
    created_at: str
    disabled_reason: str | None = None  # why failed deliveries deactivated it
    previous_secret_expires_at: str | None = None  # after a rotation: until when the old secret signs too
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Hook:
        return cls(d["id"], d["name"], d["config"], d["active"], d["createdAt"], d.get("disabledReason"),
                   d.get("previousSecretExpiresAt"), d)


@dataclass(frozen=True)
class Delivery:
    """A hook's delivery: ``status`` pending, delivered or failed; ``webhook_id`` is the same
    on every attempt."""

    id: str
    hook_id: str
    event: str
    payload: dict[str, Any]
    webhook_id: str
    status: str
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    response: str | None
    created_at: str
    updated_at: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Delivery:
        return cls(d["id"], d["hookId"], d["event"], d["payload"], d["webhookId"], d["status"], d["attempts"],
                   d["nextAttemptAt"], d["lastStatusCode"], d["lastError"], d["response"], d["createdAt"],
                   d["updatedAt"], d)


@dataclass(frozen=True)
class Message:
    """A message of a conversation. ``type``: visitor, agent (``user_id``), trigger
    (``trigger_id``, shown as from ``agent_nick``) or system (``text`` is an event code)."""

    id: str
    type: str
    user_id: str | None
    trigger_id: str | None
    agent_nick: str | None
    text: str
    client_id: str | None
    created_at: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Message:
        return cls(d["id"], d["type"], d["userId"], d["triggerId"], d["agentNick"], d["text"], d["clientId"],
                   d["createdAt"], d)


@dataclass(frozen=True)
class Conversation:
    """A conversation; ``get`` fills ``visitor`` (a dict) and ``messages`` (oldest first, up to
    500: when ``messages_next`` is not None, ``get(..., messages_after=messages_next)`` reads on)."""

    id: str
    visitor_id: str
    status: str
    offline: bool
    assigned_user_id: str | None
    rating: dict[str, Any] | None
    close_type: str | None
    created_at: str
    last_message_at: str
    closed_at: str | None
    unread_by_visitor: int
    unread_by_agents: int
    visitor: dict[str, Any] | None = None
    messages: list[Message] = field(default_factory=list)
    messages_next: str | None = None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Conversation:
        return cls(d["id"], d["visitorId"], d["status"], d["offline"], d["assignedUserId"], d["rating"],
                   d["closeType"], d["createdAt"], d["lastMessageAt"], d["closedAt"], d["unreadByVisitor"],
                   d["unreadByAgents"], d.get("visitor"), [Message.from_json(m) for m in d.get("messages", ())],
                   d.get("messagesNext"), d)
