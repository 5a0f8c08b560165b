"""``Client`` (blocking) and ``AsyncClient``: the same resources over httpx.

``AsyncClient(batch_size=N)`` sends the calls made at the same moment together, up to N
per ``POST /batch`` request (an opensupp extension; against a server without it the
client falls back to one request per call by itself). Each call keeps its own answer,
error, retries and Idempotency-Key, so code written for single calls works unchanged; a
bulk run just stops paying one HTTP round trip, and the client's CPU for it, per call.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from opensupp_client import _types as t
from opensupp_client._base import (
    Accounts,
    BaseClient,
    Conversations,
    Hooks,
    OfficeHoursResource,
    OfflineEmails,
    Reply,
    Triggers,
    Users,
    _retry_after,
)
from opensupp_client.errors import APIConnectionError, APITimeoutError

Model = Callable[[dict[str, Any]], Any] | None


def _connection_error(exc: httpx.TransportError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"The request timed out: {exc!r}")
    return APIConnectionError(f"Could not connect to the API: {exc!r}")


class Client(BaseClient):
    """A blocking client: ``Client("https://chat.example.com", "osk_...")``, or ``Client()`` to
    read ``OPENSUPP_API_URL`` and ``OPENSUPP_API_KEY`` (an argument passed wins over its variable;
    ValueError when neither gives a key)."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 max_retries: int = 2, http_client: httpx.Client | None = None, **policy: float) -> None:
        super().__init__(base_url, api_key, timeout=timeout, max_retries=max_retries, **policy)
        self._http = http_client or httpx.Client(timeout=timeout)
        self.accounts: t.SyncAccounts = Accounts(self)
        self.users: t.SyncUsers = Users(self)
        self.triggers: t.SyncTriggers = Triggers(self)
        self.office_hours: t.SyncOfficeHours = OfficeHoursResource(self)
        self.offline_emails: t.SyncOfflineEmails = OfflineEmails(self)
        self.hooks: t.SyncHooks = Hooks(self)
        self.conversations: t.SyncConversations = Conversations(self)

    def _request(self, method: str, path: str, *, json: dict[str, Any] | None = None, model: Model = None,
                 create: bool = False, delete: bool = False, idempotency_key: str | None = None) -> Any:
        headers = {**self.headers, **self._headers(self._key_for(create, idempotency_key))}
        for attempt in range(self.max_retries + 1):
            try:
                reply = Reply.of(self._http.request(method, self.base_url + path, json=json, headers=headers))
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    raise _connection_error(exc) from exc
                time.sleep(self._delay(attempt, None))
                continue
            if self._retryable(reply, attempt):
                time.sleep(self._delay(attempt, _retry_after(reply.headers)))
                continue
            return self._result(reply, model, delete and attempt > 0)
        raise AssertionError("unreachable")

    def _paginate(self, path: str, model: Model, limit: int | None) -> Iterator[Any]:
        after = None
        while True:
            page = self._request("GET", self._page_path(path, limit, after))
            for record in page["records"]:
                yield model(record) if model else record
            after = page["next"]
            if after is None:
                return

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def async_http(timeout: float = 30.0, connections: int = 100) -> httpx.AsyncClient:
    """httpx's API over aiohttp's connection handling (as openai-python offers) when
    httpx-aiohttp is installed (``opensupp-client[fast]``; the server brings it): httpx's own
    async transport spends several times more CPU per request, which is what decides how
    fast a bulk run of single calls can go. Without it, httpx's own transport."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return httpx.AsyncClient(limits=limits, timeout=timeout)
    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=timeout)


class AsyncClient(BaseClient):
    """The same surface as ``Client``; every call is awaited, ``list`` is ``async for``."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 max_retries: int = 2, http_client: httpx.AsyncClient | None = None, batch_size: int = 1,
                 batch_concurrency: int = 8, **policy: float) -> None:
        super().__init__(base_url, api_key, timeout=timeout, max_retries=max_retries, **policy)
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH}")
        if batch_concurrency < 1:
            raise ValueError("batch_concurrency must be at least 1")
        self._http = http_client or async_http(timeout)
        self.accounts: t.AsyncAccounts = Accounts(self)
        self.users: t.AsyncUsers = Users(self)
        self.triggers: t.AsyncTriggers = Triggers(self)
        self.office_hours: t.AsyncOfficeHours = OfficeHoursResource(self)
        self.offline_emails: t.AsyncOfflineEmails = OfflineEmails(self)
        self.hooks: t.AsyncHooks = Hooks(self)
        self.conversations: t.AsyncConversations = Conversations(self)
        self._batcher = _Batcher(self, batch_size, batch_concurrency) if batch_size > 1 else None

    async def _send(self, method: str, path: str, json: dict[str, Any] | None, key: str | None) -> Reply:
        """One call alone, over HTTP."""
        headers = {**self.headers, **self._headers(key)}
        return Reply.of(await self._http.request(method, self.base_url + path, json=json, headers=headers))

    async def _request(self, method: str, path: str, *, json: dict[str, Any] | None = None, model: Model = None,
                       create: bool = False, delete: bool = False, idempotency_key: str | None = None) -> Any:
        key = self._key_for(create, idempotency_key)
        for attempt in range(self.max_retries + 1):
            try:
                if self._batcher is not None:
                    reply = await self._batcher.call(method, path, json, key)
                else:
                    reply = await self._send(method, path, json, key)
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    raise _connection_error(exc) from exc
                await asyncio.sleep(self._delay(attempt, None))
                continue
            if self._retryable(reply, attempt):
                await asyncio.sleep(self._delay(attempt, _retry_after(reply.headers)))
                continue
            return self._result(reply, model, delete and attempt > 0)
        raise AssertionError("unreachable")

    async def _paginate(self, path: str, model: Model, limit: int | None) -> AsyncIterator[Any]:
        after = None
        while True:
            page = await self._request("GET", self._page_path(path, limit, after))
            for record in page["records"]:
                yield model(record) if model else record
            after = page["next"]
            if after is None:
                return

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


MAX_BATCH = 100  # the server's limit of calls per POST /batch


class _Batcher:
    """Gathers the calls made in one turn of the event loop into ``POST /batch`` requests.

    At most ``concurrency`` batches are in flight; while they all are, new calls wait and
    the next batch takes up to ``size`` of them, so batches grow exactly when the server
    is the slower side (and the calls waiting are spread over the free slots). Each call's
    future gets its own ``Reply``; a transport error
    reaches every call of the batch, and each retries on its own.
    """

    def __init__(self, client: AsyncClient, size: int, concurrency: int) -> None:
        self.client = client
        self.size = size
        self.concurrency = concurrency
        self.pending: list[tuple[dict[str, Any], asyncio.Future[Reply]]] = []
        self.in_flight = 0
        self.scheduled = False
        self.supported = True  # False once the server answered that it has no /batch
        self.tasks: set[asyncio.Task[None]] = set()

    def call(self, method: str, path: str, body: dict[str, Any] | None, key: str | None) -> asyncio.Future[Reply]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        item: dict[str, Any] = {"method": method, "url": path}
        if body is not None:
            item["body"] = body
        if key is not None:
            item["headers"] = {"Idempotency-Key": key}
        self.pending.append((item, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        self.scheduled = False
        while self.pending and self.in_flight < self.concurrency:
            # the calls waiting, spread over the free slots (up to ``size`` each): 200 calls and
            # 8 free slots go as 8 batches of 25, not 2 of 100, so that answers, and a bulk run's
            # finished rows, come back in more and earlier steps while the server has capacity
            free = self.concurrency - self.in_flight
            size = min(self.size, -(-len(self.pending) // free))
            chunk, self.pending = self.pending[:size], self.pending[size:]
            self.in_flight += 1
            task = asyncio.get_running_loop().create_task(self.send(chunk))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def send(self, chunk: list[tuple[dict[str, Any], asyncio.Future[Reply]]]) -> None:
        try:
            if self.supported and len(chunk) > 1:
                await self.send_batch(chunk)
            else:
                await self.send_each(chunk)
        finally:
            self.in_flight -= 1
            if self.pending and not self.scheduled:
                self.scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)

    async def send_batch(self, chunk: list[tuple[dict[str, Any], asyncio.Future[Reply]]]) -> None:
        client = self.client
        content = jsonlib.dumps({"requests": [item for item, _ in chunk]}, separators=(",", ":")).encode()
        headers = {**client.headers, "Content-Type": "application/json"}
        try:
            response = await client._http.post(client.base_url + "/batch", content=content, headers=headers)
        except httpx.TransportError as exc:
            for _, future in chunk:
                if not future.done():
                    future.set_exception(exc)
            return
        if response.status_code in (400, 404, 405, 413):
            # No /batch here (another server, an older opensupp): each call goes alone, now and
            # from now on. A batch over the body limit, or one the server refused as a whole
            # (a call's Idempotency-Key too long for it): each call alone, so that each gets
            # its own answer and one bad call does not fail the others.
            self.supported = response.status_code in (400, 413)
            await self.send_each(chunk)
            return
        whole = Reply.of(response)
        answered = response.status_code == 200 and isinstance(whole.body, dict)
        responses = whole.body.get("responses") if answered else None
        if not isinstance(responses, list) or len(responses) != len(chunk):
            # the batch as a whole was refused (401, 429, 5xx): that is every call's answer
            for _, future in chunk:
                if not future.done():
                    future.set_result(whole)
            return
        for (_, future), answer in zip(chunk, responses, strict=False):
            if not future.done():
                headers = {name.lower(): value for name, value in (answer.get("headers") or {}).items()}
                future.set_result(Reply(answer["status"], headers, answer.get("body"), ""))

    async def send_each(self, chunk: list[tuple[dict[str, Any], asyncio.Future[Reply]]]) -> None:
        await asyncio.gather(*(self.send_alone(item, future) for item, future in chunk))

    async def send_alone(self, item: dict[str, Any], future: asyncio.Future[Reply]) -> None:
        key = (item.get("headers") or {}).get("Idempotency-Key")
        try:
            reply = await self.client._send(item["method"], item["url"], item.get("body"), key)
        except httpx.TransportError as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(reply)
