"""What the sync and async clients share: the resources, the retry policy, the errors.

A resource method returns whatever its client's ``_request`` returns: a value for
``Client``, an awaitable for ``AsyncClient``; so every resource is written once.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import httpx

from opensupp_client._version import __version__
from opensupp_client.errors import error_for
from opensupp_client.models import (
    Account,
    Conversation,
    Delivery,
    Hook,
    Message,
    OfficeHours,
    OfflineEmail,
    Trigger,
    User,
)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0


class Reply(NamedTuple):
    """What one call answered: over HTTP alone, or as one response inside a batch."""

    status: int
    headers: Mapping[str, str]  # names in lower case (httpx's headers are case-insensitive)
    body: Any  # the parsed JSON, or None
    text: str  # the raw text when the body was not JSON

    @classmethod
    def of(cls, response: httpx.Response) -> Reply:
        try:
            return cls(response.status_code, response.headers, json.loads(response.content), "")
        except ValueError:
            return cls(response.status_code, response.headers, None, response.text[:500])


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


URL_VARIABLE = "OPENSUPP_API_URL"
KEY_VARIABLE = "OPENSUPP_API_KEY"


def _from_environment(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    """The arguments, else the environment's ``OPENSUPP_API_URL`` and ``OPENSUPP_API_KEY``."""
    base_url = base_url or os.environ.get(URL_VARIABLE) or ""
    api_key = api_key or os.environ.get(KEY_VARIABLE) or ""
    if not base_url:
        raise ValueError(f"no API URL: pass base_url (e.g. https://chat.example.com) or set {URL_VARIABLE}")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    if not api_key:
        raise ValueError(f"no API key: pass api_key (osk_...) or set {KEY_VARIABLE}")
    return base_url, api_key


class BaseClient:
    def __init__(
        self, base_url: str | None, api_key: str | None, *, timeout: float = 30.0, max_retries: int = 2,
        backoff: float = 0.5, max_backoff: float = 8.0,
    ) -> None:
        base_url, api_key = _from_environment(base_url, api_key)
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.headers = {"apiKey": api_key, "User-Agent": f"opensupp-python/{__version__}", "Accept": "application/json"}

    # the policy, shared by both clients' loops

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        ceiling = min(self.max_backoff, self.backoff * 2.0**attempt)
        return ceiling * (0.5 + random.random() / 2)  # jitter, so retries do not stampede

    def _headers(self, idempotency_key: str | None) -> dict[str, str]:
        return {"Idempotency-Key": idempotency_key} if idempotency_key else {}

    @staticmethod
    def _key_for(create: bool, idempotency_key: str | None) -> str | None:
        """A create always carries a key, the same one on every retry of the call."""
        return idempotency_key or (str(uuid.uuid4()) if create else None)

    @staticmethod
    def _page_path(path: str, limit: int | None, after: str | None) -> str:
        """A list page's path (the cursor is URL-safe, so it goes in unchanged)."""
        return _query_path(path, {"limit": limit or None, "after": after or None})

    def _retryable(self, reply: Reply, attempt: int) -> bool:
        return reply.status in RETRY_STATUSES and attempt < self.max_retries

    @staticmethod
    def _result(reply: Reply, model: Callable[[dict[str, Any]], Any] | None, deleted_on_retry: bool) -> Any:
        if reply.status == 204 or (deleted_on_retry and reply.status == 404):
            return None  # a retried delete whose first attempt already deleted
        body = reply.body
        if body is None:
            body = {"error": "ServerError" if reply.status >= 500 else "Error", "message": reply.text}
        if 200 <= reply.status < 300:
            return model(body) if model else body
        raise error_for(reply.status, body, _retry_after(reply.headers))


class _Resource:
    def __init__(self, client: Any) -> None:
        self._client = client


class Accounts(_Resource):
    def list(self, *, limit: int | None = None) -> Any:
        """Every account, oldest first, following ``next`` page by page."""
        return self._client._paginate("/accounts/", Account.from_json, limit)

    def create(self, *, title: str, lang: str, idempotency_key: str | None = None) -> Any:
        return self._client._request("POST", "/accounts/create", json={"title": title, "lang": lang},
                                     model=Account.from_json, create=True, idempotency_key=idempotency_key)

    def get(self, account_id: str | int) -> Any:
        return self._client._request("GET", f"/accounts/{account_id}/get", model=Account.from_json)

    def update(self, account_id: str | int, **fields: Any) -> Any:
        return self._client._request("POST", f"/accounts/{account_id}/update", json=fields, model=Account.from_json)

    def delete(self, account_id: str | int) -> Any:
        return self._client._request("GET", f"/accounts/{account_id}/delete", delete=True)

    def chatcode(self, account_id: str | int) -> Any:
        """The chat code to put between ``<head>`` and ``</head>``: the guide's snippet with the
        account's key and the server's ``loader.js``."""
        return self._client._request("GET", f"/accounts/{account_id}/chatcode", model=_chatcode)


def _chatcode(answer: dict[str, Any]) -> str:
    return str(answer["chatcode"])


class _AccountChild(_Resource):
    plural = ""
    model: Callable[[dict[str, Any]], Any]

    def _path(self, account_id: str | int, tail: str) -> str:
        return f"/accounts/{account_id}/{self.plural}/{tail}"

    def list(self, account_id: str | int, *, limit: int | None = None) -> Any:
        return self._client._paginate(self._path(account_id, ""), self.model, limit)

    def _create(self, account_id: str | int, fields: dict[str, Any], idempotency_key: str | None) -> Any:
        return self._client._request("POST", self._path(account_id, "create"), json=_drop_none(fields),
                                     model=self.model, create=True, idempotency_key=idempotency_key)

    def get(self, account_id: str | int, item_id: str | int) -> Any:
        return self._client._request("GET", self._path(account_id, f"{item_id}/get"), model=self.model)

    def update(self, account_id: str | int, item_id: str | int, **fields: Any) -> Any:
        return self._client._request("POST", self._path(account_id, f"{item_id}/update"), json=fields, model=self.model)

    def delete(self, account_id: str | int, item_id: str | int) -> Any:
        return self._client._request("GET", self._path(account_id, f"{item_id}/delete"), delete=True)


class Users(_AccountChild):
    plural, model = "users", staticmethod(User.from_json)

    def create(self, account_id: str | int, *, email: str, password: str, fullname: str, role: str | None = None,
               nickname: str | None = None, avatar: str | None = None, note: str | None = None,
               lang: str | None = None, idempotency_key: str | None = None) -> Any:
        fields = {"email": email, "password": password, "fullname": fullname, "role": role, "nickname": nickname,
                  "avatar": avatar, "note": note, "lang": lang}
        return self._create(account_id, fields, idempotency_key)

    def login_link(self, account_id: str | int, user_id: str | int) -> Any:
        """A one-time link that signs the user in to the agent dashboard (``{"url", "expiresAt"}``):
        send the user's browser to ``url``; it works once, within a minute (the server's setting).
        Unlike the guide's fast login, the API key never reaches the browser."""
        return self._client._request("POST", self._path(account_id, f"{user_id}/login-link"), json={})


class Triggers(_AccountChild):
    plural, model = "triggers", staticmethod(Trigger.from_json)

    def create(self, account_id: str | int, *, name: str, actions: list[dict[str, Any]],
               conditions: list[dict[str, Any]] | None = None, active: bool | None = None,
               description: str | None = None, event: str | None = None, only_once: bool | None = None,
               constraints: str | None = None, idempotency_key: str | None = None) -> Any:
        fields = {"name": name, "actions": actions, "conditions": conditions, "active": active,
                  "description": description, "event": event, "only_once": only_once, "constraints": constraints}
        return self._create(account_id, fields, idempotency_key)


    def evaluate(self, account_id: str | int, *, event: str | None = None, visitor: dict[str, Any] | None = None,
                 at: str | None = None) -> Any:
        """A dry run: for ``visitor`` on ``event`` at ``at``, whether each trigger of the account fires
        now, later or never, and why (``{"event", "at", "timezone", "visitor", "triggers"}``)."""
        body = _drop_none({"event": event, "visitor": visitor, "at": at})
        return self._client._request("POST", self._path(account_id, "evaluate"), json=body)


class OfflineEmails(_AccountChild):
    plural, model = "offlineemails", staticmethod(OfflineEmail.from_json)

    def create(self, account_id: str | int, *, email: str, idempotency_key: str | None = None) -> Any:
        return self._create(account_id, {"email": email}, idempotency_key)


class Hooks(_AccountChild):
    plural, model = "hooks", staticmethod(Hook.from_json)

    def create(self, account_id: str | int, *, name: str, config: dict[str, Any], active: bool | None = None,
               idempotency_key: str | None = None) -> Any:
        return self._create(account_id, {"name": name, "config": config, "active": active}, idempotency_key)

    def test(self, account_id: str | int, hook_id: str | int) -> Any:
        """Queue a signed test event (``hook.test``) to the hook; answers its delivery."""
        return self._client._request("POST", self._path(account_id, f"{hook_id}/test"), json={},
                                     model=Delivery.from_json)

    def deliveries(self, account_id: str | int, hook_id: str | int, *, limit: int | None = None) -> Any:
        """The hook's deliveries, oldest first, following ``next`` page by page."""
        return self._client._paginate(self._path(account_id, f"{hook_id}/deliveries/"), Delivery.from_json, limit)

    def retry_delivery(self, account_id: str | int, hook_id: str | int, delivery_id: str | int) -> Any:
        """Send the delivery again now, with the same webhook-id."""
        return self._client._request("POST", self._path(account_id, f"{hook_id}/deliveries/{delivery_id}/retry"),
                                     json={}, model=Delivery.from_json)

    def rotate_secret(self, account_id: str | int, hook_id: str | int, *, secret: str | None = None) -> Any:
        """A new secret (``secret``, or a generated one) signs the hook's deliveries; the old
        one signs them too for 24 hours. Answers the hook, with its new secret."""
        return self._client._request("POST", self._path(account_id, f"{hook_id}/rotate-secret"),
                                     json=_drop_none({"secret": secret}), model=Hook.from_json)


def _query_path(path: str, params: dict[str, Any]) -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return f"{path}{'&' if '?' in path else '?'}{query}" if query else path


class Conversations(_Resource):
    """An account's conversations with visitors: read them, write as an agent, close them."""

    def _path(self, account_id: str | int, tail: str) -> str:
        return f"/accounts/{account_id}/conversations/{tail}"

    def list(self, account_id: str | int, *, status: str | None = None, since: str | None = None,
             until: str | None = None, limit: int | None = None) -> Any:
        """Every conversation, oldest first, following ``next`` page by page; ``status``
        (pending, open, closed), ``since`` and ``until`` (RFC 3339 instants, inclusive, on the
        last message's time) narrow it."""
        path = _query_path(self._path(account_id, ""), {"status": status, "from": since, "to": until})
        return self._client._paginate(path, Conversation.from_json, limit)

    def get(self, account_id: str | int, conversation_id: str | int, *, messages_after: str | None = None) -> Any:
        """The conversation with its visitor and its messages (see ``Conversation.messages_next``)."""
        path = _query_path(self._path(account_id, f"{conversation_id}/get"), {"messagesAfter": messages_after})
        return self._client._request("GET", path, model=Conversation.from_json)

    def send_message(self, account_id: str | int, conversation_id: str | int, *, user_id: str | int, text: str,
                     client_id: str | None = None) -> Any:
        """Write ``text`` as the agent ``user_id``; the same ``client_id`` again answers the first message."""
        body = _drop_none({"userId": str(user_id), "text": text, "clientId": client_id})
        return self._client._request("POST", self._path(account_id, f"{conversation_id}/messages"), json=body,
                                     model=_sent_message)

    def close(self, account_id: str | int, conversation_id: str | int) -> Any:
        return self._client._request("POST", self._path(account_id, f"{conversation_id}/close"), json={},
                                     model=Conversation.from_json)


def _sent_message(answer: dict[str, Any]) -> Message:
    return Message.from_json(answer["message"])


class OfficeHoursResource(_Resource):
    def status(self, account_id: str | int, *, at: str | None = None) -> Any:
        """``{"open", "since", "next_change", "timezone"}`` at ``at`` (RFC 3339 with an offset; default now)."""
        return self._client._request("GET", _query_path(f"/accounts/{account_id}/officehours/status", {"at": at}))

    def schedule(self, account_id: str | int, *, start: str | None = None, days: int | None = None) -> Any:
        """``{"timezone", "from", "to", "intervals"}``: the open intervals in UTC from ``start`` (a local
        date or an instant; default today) for ``days`` (1 to 31; default 7)."""
        path = _query_path(f"/accounts/{account_id}/officehours/schedule", {"from": start, "days": days})
        return self._client._request("GET", path)

    def get(self, account_id: str | int) -> Any:
        return self._client._request("GET", f"/accounts/{account_id}/officehours/get", model=OfficeHours.from_json)

    def update(self, account_id: str | int, **fields: Any) -> Any:
        return self._client._request("POST", f"/accounts/{account_id}/officehours/update", json=fields,
                                     model=OfficeHours.from_json)
