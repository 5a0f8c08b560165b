"""The worker: claims the due deliveries, sends each after the claim has committed, records
the result. Several processes may run it: a delivery is claimed by one at a time (its lease),
and sent again, with the same webhook-id, when a worker dies before recording it (at least once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

import httpx

from opensupp.db import Database
from opensupp.errors import Unavailable
from opensupp.outbox import sending, service
from opensupp.outbox.models import Delivery
from opensupp.timeutil import now

log = logging.getLogger("opensupp.outbox")

LEASE = 120  # seconds a claim holds: longer than an attempt (timeouts included) takes
BATCH = 20
IDLE = 1.0  # seconds between polls when nothing was due


class Mailer(Protocol):
    """Sends a mail delivery (its payload says to whom and what) and tells how it went."""

    async def send(self, delivery: Delivery) -> sending.Outcome: ...


class Worker:
    def __init__(self, db: Database, *, networks: Sequence[sending.Network] = (),
                 schedule: Sequence[int] = service.RETRY_SCHEDULE, lease: int = LEASE, idle: float = IDLE,
                 mailer: Mailer | None = None) -> None:
        self.db = db
        self.mailer = mailer
        self.networks = tuple(networks)
        self.schedule = tuple(schedule)
        self.lease = lease
        self.idle = idle

    async def run_once(self) -> int:
        """Claim the due deliveries (one short transaction), send them, record each result:
        answers how many were claimed."""
        async with self.db.read() as session:
            if not await service.any_due(session, mail=self.mailer is not None):
                return 0
        async with self.db.transaction() as session:
            claimed = await service.claim_due(session, limit=BATCH, lease=self.lease, mail=self.mailer is not None)
        if claimed:
            async with sending.client(self.networks) as http:
                await asyncio.gather(*(self._deliver(http, item) for item in claimed))
        return len(claimed)

    async def _deliver(self, http: httpx.AsyncClient, item: service.Claimed) -> None:
        delivery = item.delivery
        if item.url is None or item.secret is None:
            assert self.mailer is not None  # mails are claimed only with a mailer
            outcome = await self.mailer.send(delivery)
        else:
            body = delivery.payload.encode()
            headers = sending.signed_headers(item.secret, delivery.webhook_id, now(), body,
                                             previous_secret=item.previous_secret)
            outcome = await sending.send(http, item.url, headers, body)
        if not outcome.ok:
            log.info("delivery %d (%s) attempt %d failed: %s", delivery.id, delivery.event, delivery.attempts,
                     outcome.error)
        async with self.db.transaction() as session:
            await service.record_attempt(session, delivery=delivery, ok=outcome.ok, status_code=outcome.status_code,
                                         error=outcome.error, response=outcome.response,
                                         retry_after=outcome.retry_after, schedule=self.schedule,
                                         permanent=outcome.permanent)

    async def loop(self) -> None:
        while True:
            try:
                if await self.run_once():
                    continue
            except Unavailable:
                pass  # logged by the database's Health
            except Exception:
                log.warning("the outbox worker failed a round", exc_info=True)
            await asyncio.sleep(self.idle)
