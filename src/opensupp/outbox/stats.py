"""The hourly ``domain-stats-report`` (HOOKS-FACTS 7.1): at the start of every hour, each active
such hook gets the last hour's counts per domain, ``{"domains": {"example.com": {"visits",
"conversations", "autoMessages", "autoMessagesReply"}}}``.

Every server process may tick (``StatsReport.loop``): a hook's report for an hour is enqueued
under the webhook-id ``msg_stats_<hook id>_<hour start>``, which the deliveries' unique index
lets in once. After downtime, the missed hours are reported too, the last ``CATCH_UP`` at most
(never hours that ended before the hook was made). A process reads the hooks once an hour:
between hours a tick reads nothing.

A domain is the host of a page's URL (``page_views.url``; the visitor's last page when it
opened none before). In the hour:
- ``visits``: the visitors who opened a page of the domain (a visitor counts once per domain);
- ``conversations``: the conversations begun in the hour in which the visitor or an agent
  wrote (one holding only a trigger's message is no chat), by the page the visitor was on
  when it began;
- ``autoMessages``: the triggers' messages sent, by the page the visitor was on;
- ``autoMessagesReply``: the visitors' replies to a trigger's message (their first message after it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from opensupp.db import Database, Session
from opensupp.errors import Unavailable
from opensupp.outbox import service

log = logging.getLogger("opensupp.outbox")

EVENT = "domain-stats-report"
HOUR = 3600
CATCH_UP = 24  # hours reported at most after downtime
GRACE = 5  # seconds after an hour before its report is made, so the writes of its last second have committed
IDLE = 60.0  # seconds between ticks at most
COUNTS = ("visits", "conversations", "autoMessages", "autoMessagesReply")

# the page the visitor was on at the time ``{at}`` (the last opened by then), else its last page
_PAGE_AT = ("COALESCE((SELECT p.url FROM page_views p WHERE p.visitor_id = c.visitor_id AND p.at <= {at}"
            " ORDER BY p.id DESC LIMIT 1), v.last_url)")


@dataclass(frozen=True, slots=True)
class StatsHook:
    id: int
    account_id: int
    created_at: int


def webhook_id(hook_id: int, hour: int) -> str:
    """At most 40 characters: a hook id of up to 19 digits, an hour of 10."""
    return f"msg_stats_{hook_id}_{hour}"


def due_hours(hour: int, created_at: int, catch_up: int = CATCH_UP) -> list[int]:
    """The starts of the hours to report when the hour ``hour`` has begun: the one before it
    and the missed ones, the last ``catch_up`` at most, none that ended before ``created_at``."""
    return [h for h in range(hour - catch_up * HOUR, hour, HOUR) if h + HOUR > created_at]


def domain(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host or None


async def stats_hooks(session: Session) -> list[StatsHook]:
    rows = await session.fetch(
        "SELECT id, account_id, created_at FROM hooks WHERE name = $1 AND active ORDER BY id", EVENT
    )
    return [StatsHook(*row) for row in rows]


async def domain_stats(session: Session, *, account_id: int, start: int, end: int) -> dict[str, dict[str, int]]:
    """The counts of the hour [``start``, ``end``) per domain (see the module's docstring)."""
    found: dict[str, dict[str, int]] = {}

    def add(host: str | None, what: str) -> None:
        if host is not None:
            found.setdefault(host, dict.fromkeys(COUNTS, 0))[what] += 1

    visited = await session.fetch(
        "SELECT DISTINCT visitor_id, url FROM page_views WHERE account_id = $1 AND at >= $2 AND at < $3",
        account_id, start, end,
    )
    for host, _ in {(domain(url), visitor_id) for visitor_id, url in visited}:
        add(host, "visits")
    for (url,) in await session.fetch(
        f"SELECT {_PAGE_AT.format(at='c.created_at')} FROM conversations c JOIN visitors v ON v.id = c.visitor_id"
        " WHERE c.account_id = $1 AND c.last_message_at >= $2 AND c.created_at >= $2 AND c.created_at < $3"
        " AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.kind IN ('visitor', 'agent'))",
        account_id, start, end,
    ):
        add(domain(url), "conversations")
    for kind, url in await session.fetch(
        f"SELECT m.kind, {_PAGE_AT.format(at='m.created_at')} FROM conversations c"
        " JOIN messages m ON m.conversation_id = c.id JOIN visitors v ON v.id = c.visitor_id"
        " WHERE c.account_id = $1 AND c.last_message_at >= $2 AND m.created_at >= $2 AND m.created_at < $3"
        " AND (m.kind = 'trigger' OR m.replied_trigger_id IS NOT NULL)",
        account_id, start, end,
    ):
        add(domain(url), "autoMessages" if kind == "trigger" else "autoMessagesReply")
    return found


async def unreported(session: Session, hook: StatsHook, hours: Iterable[int]) -> dict[int, dict[str, object]]:
    """The hook's reports of ``hours`` that no delivery has yet (a read): {hour start: payload}."""
    keys = {h: webhook_id(hook.id, h) for h in hours}
    if not keys:
        return {}
    placeholders = ", ".join(f"${i}" for i in range(1, len(keys) + 1))
    done = {row[0] for row in await session.fetch(
        f"SELECT webhook_id FROM deliveries WHERE webhook_id IN ({placeholders})", *keys.values())}
    return {h: {"domains": await domain_stats(session, account_id=hook.account_id, start=h, end=h + HOUR)}
            for h, key in keys.items() if key not in done}


async def enqueue_reports(session: Session, hook: StatsHook, reports: dict[int, dict[str, object]]) -> int:
    """Enqueue the reports, oldest first, each unless another process did meanwhile; answers how many were."""
    enqueued = 0
    for h, payload in sorted(reports.items()):
        if await service.enqueue_once(session, account_id=hook.account_id, hook_id=hook.id, event=EVENT,
                                      payload=payload, webhook_id=webhook_id(hook.id, h)) is not None:
            enqueued += 1
    return enqueued


class StatsReport:
    """The hourly tick; ``clock`` (Unix seconds) is injectable, so a test makes an hour begin."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time, catch_up: int = CATCH_UP,
                 idle: float = IDLE) -> None:
        self.db = db
        self.clock = clock
        self.catch_up = catch_up
        self.idle = idle
        self.reported_hour: int | None = None  # the hour whose reports this process has made

    def current_hour(self) -> int:
        t = int(self.clock()) - GRACE
        return t - t % HOUR

    async def run_once(self) -> int:
        """The reports due since the current hour began, unless this process made them
        already (then nothing is read): answers how many it enqueued."""
        hour = self.current_hour()
        if hour == self.reported_hour:
            return 0
        async with self.db.read() as session:
            hooks = await stats_hooks(session)
        enqueued = 0
        for hook in hooks:
            enqueued += await self.report(hook, due_hours(hour, hook.created_at, self.catch_up))
        self.reported_hour = hour
        return enqueued

    async def report(self, hook: StatsHook, hours: list[int]) -> int:
        """Counted in a read, enqueued in a short transaction (SQLite's one writer waits little)."""
        async with self.db.read() as session:
            reports = await unreported(session, hook, hours)
        if not reports:
            return 0
        async with self.db.transaction() as session:
            return await enqueue_reports(session, hook, reports)

    def seconds_to_next(self) -> float:
        t = self.clock()
        return self.current_hour() + HOUR + GRACE - t

    async def loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Unavailable:
                pass  # logged by the database's Health
            except Exception:
                log.warning("the hourly domain-stats-report failed", exc_info=True)
            await asyncio.sleep(max(0.5, min(self.idle, self.seconds_to_next())))
