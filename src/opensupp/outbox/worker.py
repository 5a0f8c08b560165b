"""The worker: claims the due deliveries, sends each after the claim has committed, records
the result. Several processes may run it: a delivery is claimed by one at a time (its lease),
and sent again, with the same webhook-id, when a worker dies before recording it (at least once)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Collection, Sequence
from typing import Protocol

import asyncpg
import httpx

from opensupp.db import Database, PostgresDatabase
from opensupp.errors import Unavailable
from opensupp.outbox import sending, service
from opensupp.outbox.models import Delivery
from opensupp.timeutil import now

log = logging.getLogger("opensupp.outbox")

LEASE = 120  # seconds a claim holds: longer than an attempt (timeouts included) takes
GATHER = 0.02  # seconds an ending attempt waits for the others sent with it, to be recorded together
MAIL_SECONDS = 60.0  # a whole SMTP exchange (a hook's POST: sending.ATTEMPT_SECONDS)
BATCH = 20
IDLE = 1.0  # seconds between polls when nothing was due (an enqueue in this process wakes it at once)
LISTEN_RETRY = 5.0  # seconds before listening again after the listening connection was lost
PURGE_EVERY = 3600  # seconds between purges of the deliveries older than the log keeps
DISABLE_AFTER = 3 * 86400  # seconds of failed deliveries, none delivered, after which a hook is deactivated


async def _connect(dsn: str) -> asyncpg.Connection:
    """A connection of its own; a cancellation (the server stopping) lets an attempt under way
    end and closes what it made, since asyncpg cut off mid-handshake reports an error."""
    connecting = asyncio.ensure_future(asyncpg.connect(dsn, timeout=5))
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await (await connecting).close()
        raise


class Mailer(Protocol):
    """Sends a mail delivery (its payload says to whom and what) and tells how it went."""

    async def send(self, delivery: Delivery) -> sending.Outcome: ...


class Worker:
    def __init__(self, db: Database, *, networks: Sequence[sending.Network] = (),
                 schedule: Sequence[int] = service.RETRY_SCHEDULE, lease: int = LEASE, idle: float = IDLE,
                 mailer: Mailer | None = None, disable_after: int = DISABLE_AFTER, keep_days: int = 30,
                 deadline: float = sending.ATTEMPT_SECONDS) -> None:
        self.db = db
        self.deadline = deadline
        self.keep = keep_days * 86400
        self.purged_at = 0.0
        self.mailer = mailer
        self.disable_after = disable_after
        self.http: httpx.AsyncClient | None = None  # kept while ``loop`` runs: connections are reused
        self.networks = tuple(networks)
        self.schedule = tuple(schedule)
        self.lease = lease
        self.idle = idle

    async def run_once(self) -> int:
        """Claim the due deliveries (one short transaction), send them at once, record their
        results (one transaction): answers how many were claimed."""
        claimed = await self._claim(BATCH, ())
        if not claimed:
            return 0
        if self.http is not None:
            outcomes = await asyncio.gather(*(self._send(self.http, item) for item in claimed))
        else:
            async with sending.client(self.networks) as http:
                outcomes = await asyncio.gather(*(self._send(http, item) for item in claimed))
        await self._record(list(zip(claimed, outcomes, strict=True)))
        return len(claimed)

    async def _claim(self, limit: int, busy: Collection[int]) -> list[service.Claimed]:
        """Up to ``limit`` due deliveries (none of the ``busy`` hooks'), after a read that finds
        any due at all: an idle worker's polls write nothing."""
        async with self.db.read() as session:
            if not await service.any_due(session, mail=self.mailer is not None):
                return []
        async with self.db.transaction() as session:
            return await service.claim_due(session, limit=limit, lease=self.lease, mail=self.mailer is not None,
                                           busy=busy, max_attempts=len(self.schedule) + 1)

    async def _send(self, http: httpx.AsyncClient, item: service.Claimed) -> sending.Outcome:
        delivery = item.delivery
        try:
            if item.url is None or item.secret is None:
                assert self.mailer is not None  # mails are claimed only with a mailer
                async with asyncio.timeout(MAIL_SECONDS):
                    outcome = await self.mailer.send(delivery)
            else:
                body = delivery.payload.encode()
                headers = sending.signed_headers(item.secret, delivery.webhook_id, now(), body,
                                                 previous_secret=item.previous_secret)
                outcome = await sending.send(http, item.url, headers, body, self.deadline)
        except TimeoutError:
            outcome = sending.Outcome(ok=False, error=f"no whole SMTP exchange within {MAIL_SECONDS:g} s")
        except Exception as exc:  # a failed attempt, retried: never a lost batch
            log.warning("delivery %d (%s) attempt %d raised", delivery.id, delivery.event, delivery.attempts,
                        exc_info=True)
            outcome = sending.Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
        if not outcome.ok:
            log.info("delivery %d (%s) attempt %d failed: %s", delivery.id, delivery.event, delivery.attempts,
                     outcome.error)
        return outcome

    async def _record(self, results: list[tuple[service.Claimed, sending.Outcome]]) -> None:
        """A batch's results in one transaction (one commit, not one per delivery), rows in id
        order; each hook's state once, from its deliveries in the batch (one delivered ends its
        failing spell), hooks in id order, so concurrent workers never lock in opposite orders."""
        hooks: dict[int, sending.Outcome] = {}
        async with self.db.transaction() as session:
            hook_ids = sorted({item.delivery.hook_id for item, outcome in results
                               if item.delivery.hook_id is not None and not outcome.ok})
            # a failure updates its hook: locked before the deliveries, as a hook's delete cascades, so the
            # two never wait for each other (the common all-delivered batch locks no hook)
            if hook_ids and session.dialect == "postgresql":
                await session.fetch("SELECT id FROM hooks WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                                    hook_ids)
            await service.record_attempts(session, [(item.delivery, outcome) for item, outcome in results],
                                          self.schedule)
            for item, outcome in results:
                hook_id = item.delivery.hook_id
                if hook_id is not None:
                    seen = hooks.get(hook_id)
                    hooks[hook_id] = outcome if seen is None or not seen.ok else seen
            for hook_id in sorted(hooks):
                outcome = hooks[hook_id]
                if await service.record_hook_result(session, hook_id=hook_id, ok=outcome.ok, error=outcome.error,
                                                    disable_after=self.disable_after):
                    log.warning("hook %d deactivated: its deliveries have failed for %d days", hook_id,
                                self.disable_after // 86400)

    @staticmethod
    def _busy(flying: dict[asyncio.Task[sending.Outcome], service.Claimed]) -> list[int]:
        """The hooks with ``PER_HOOK`` attempts in flight: the next claim takes none of theirs."""
        counts = collections.Counter(item.delivery.hook_id for item in flying.values())
        return [hook_id for hook_id, n in counts.items() if hook_id is not None and n >= service.PER_HOOK]

    async def _wait(self, flying: dict[asyncio.Task[sending.Outcome], service.Claimed], wake: asyncio.Event) -> None:
        """Until an attempt finishes, an enqueue wakes the worker, or ``idle`` seconds pass (due
        retries are found then). asyncio.timeout, not wait_for: on 3.11 wait_for swallows a
        cancellation that comes as the event is set (the server's shutdown would wait forever)."""
        if any(task.done() for task in flying):
            return
        woken = asyncio.create_task(wake.wait())
        try:
            await asyncio.wait([*flying, woken], timeout=self.idle, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
        finishing = [task for task in flying if not task.done()]
        if finishing and len(finishing) < len(flying):  # the attempts sent together end together: one record
            await asyncio.wait(finishing, timeout=GATHER)

    async def purge(self) -> int:
        """The deliveries ended longer ago than the log keeps, deleted slice by slice; answers how many."""
        purged = 0
        while True:
            async with self.db.transaction() as session:
                count = await service.purge_before(session, before=now() - self.keep)
            purged += count
            if count < service.PURGE_SLICE:
                return purged

    async def _purge_now_and_then(self) -> None:
        if time.monotonic() - self.purged_at >= PURGE_EVERY or not self.purged_at:
            self.purged_at = time.monotonic()
            if purged := await self.purge():
                log.info("purged %d deliveries older than %d days", purged, self.keep // 86400)

    async def _listen(self, wake: asyncio.Event) -> None:
        """PostgreSQL: ``wake`` on every enqueue committed by any process (LISTEN on a connection
        of its own, checked every 30 s and made again when lost). Only a shortcut: the poll goes on."""
        assert isinstance(self.db, PostgresDatabase)
        while True:
            conn = None
            try:
                conn = await _connect(self.db.dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _, lost=lost: lost.set())
                await conn.add_listener(service.CHANNEL, lambda *_: wake.set())
                wake.set()  # what was committed while nobody listened
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(30):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(5):
                            await conn.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.debug("the outbox's listening connection: %s", exc)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(LISTEN_RETRY)

    async def loop(self) -> None:
        """Deliver until cancelled, ``BATCH`` attempts in flight: a slot that frees is filled at
        once (a slow receiver holds its own slots only, at most ``PER_HOOK`` of them), finished
        attempts are recorded together, and an idle worker waits for a wake (an enqueue
        committed in this process, or on PostgreSQL in any) or ``idle`` seconds."""
        wake = asyncio.Event()
        service._wakers.add(wake)
        listener = asyncio.create_task(self._listen(wake)) if self.db.kind == "postgresql" else None
        flying: dict[asyncio.Task[sending.Outcome], service.Claimed] = {}
        try:
            async with sending.client(self.networks) as self.http:
                while True:
                    wake.clear()  # before the round: an enqueue committed during it wakes the next wait
                    try:
                        await self._purge_now_and_then()
                        if len(flying) <= BATCH // 2:  # half the slots free: claims stay few and full
                            for item in await self._claim(BATCH - len(flying), self._busy(flying)):
                                flying[asyncio.create_task(self._send(self.http, item))] = item
                    except Unavailable:
                        pass  # logged by the database's Health
                    except Exception:
                        log.warning("the outbox worker failed a round", exc_info=True)
                    await self._wait(flying, wake)
                    done = [task for task in flying if task.done()]
                    if done:
                        results = [(flying.pop(task), task.result()) for task in done]
                        try:
                            await self._record(results)
                        except Exception:  # unrecorded: sent again once their leases end (at least once)
                            log.warning("the outbox worker could not record %d attempts", len(results),
                                        exc_info=True)
        finally:
            for task in flying:
                task.cancel()
            await asyncio.gather(*flying, return_exceptions=True)
            self.http = None
            service._wakers.discard(wake)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
