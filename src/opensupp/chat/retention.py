"""OPENSUPP_CHAT_RETENTION_DAYS: every hour (and at start), the conversations closed longer
ago than that, with their messages, the page views older than that, and the visitors last
seen before it who have no conversation left, deleted in slices (chat/service.py's
``purge_before``), as idempotency keys are purged (web/idempotent.py)."""

from __future__ import annotations

import asyncio
import logging

from opensupp.chat import service
from opensupp.db import Database
from opensupp.errors import Unavailable
from opensupp.timeutil import now

PURGE_EVERY = 3600

log = logging.getLogger("opensupp.chat")


class Retention:
    def __init__(self, db: Database, days: int) -> None:
        self.db = db
        self.seconds = days * 86400

    async def purge(self) -> int:
        """One purge, slice after slice until a slice finds less than a full one of each kind;
        answers the rows deleted in the largest slices (a measure for the log)."""
        purged = 0
        before = now() - self.seconds
        while True:
            async with self.db.transaction() as session:
                count = await service.purge_before(session, before=before)
            purged += count
            if count < service.PURGE_SLICE:
                return purged

    async def purge_loop(self) -> None:
        while True:
            try:
                if await self.purge():
                    log.info("purged the chats older than %d days", self.seconds // 86400)
            except Unavailable:
                pass  # logged by the database's Health; the next hour tries again
            except Exception:
                log.warning("could not purge old chats", exc_info=True)
            await asyncio.sleep(PURGE_EVERY)
