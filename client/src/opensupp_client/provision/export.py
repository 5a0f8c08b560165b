"""``opensupp export``'s engine: every account of the partner, with everything under it, in
the NDJSON shape ``opensupp provision`` reads (no ids, no passwords)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

from opensupp_client._client import AsyncClient
from opensupp_client.provision.validating import OFFICEHOURS_KEYS

DEFAULT_OFFICEHOURS = {"active": False, "days": [], "timezone": 0, "config": []}


def _without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


async def export_account(client: AsyncClient, account: Any, *, omit_secrets: bool = False) -> dict[str, Any]:
    """One account with everything under it, in provision's NDJSON shape (no ids, no passwords)."""
    aid = account.id

    async def collect(resource: Any) -> list[dict[str, Any]]:
        return [item.raw async for item in resource.list(aid)]

    # one request at a time per account: --concurrency accounts in flight is that many requests
    users = await collect(client.users)
    triggers = await collect(client.triggers)
    hours = await client.office_hours.get(aid)
    offline = await collect(client.offline_emails)
    hooks = await collect(client.hooks)
    row: dict[str, Any] = {"title": account.title, "lang": account.lang}
    if users:
        row["users"] = [_without(u, "id", "createdAt") for u in users]
    if triggers:
        row["triggers"] = [_without(t, "id") for t in triggers]
    office = {k: hours.raw[k] for k in OFFICEHOURS_KEYS if k in hours.raw}
    if office != DEFAULT_OFFICEHOURS:
        row["officehours"] = office
    if offline:
        row["offlineemails"] = [{"email": o["email"]} for o in offline]
    if hooks:
        row["hooks"] = []
        for hook in hooks:
            config = dict(hook["config"])
            if omit_secrets:
                config.pop("secret", None)
            row["hooks"].append({"name": hook["name"], "config": config, "active": hook["active"]})
    return row


async def export(client: AsyncClient, write: Callable[[dict[str, Any]], Awaitable[None] | None], *,
                 concurrency: int = 8, omit_secrets: bool = False) -> int:
    """Every account of the partner, oldest first, through ``write``; the number written."""
    window: collections.deque[asyncio.Task[dict[str, Any]]] = collections.deque()
    count = 0

    async def flush_one() -> None:
        nonlocal count
        result = write(await window.popleft())
        if asyncio.iscoroutine(result):
            await result
        count += 1

    try:
        async for account in client.accounts.list():
            window.append(asyncio.create_task(export_account(client, account, omit_secrets=omit_secrets)))
            if len(window) >= concurrency:
                await flush_one()
        while window:
            await flush_one()
    finally:
        for task in window:
            task.cancel()
        await asyncio.gather(*window, return_exceptions=True)
    return count
