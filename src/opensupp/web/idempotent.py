"""Creates under an ``Idempotency-Key``: the create and its saved answer in one transaction,
a key already taken replayed (idempotency/service.py keeps the answers); and the hourly
purge of the expired ones.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from typing import Any

import orjson

from opensupp.db import Database
from opensupp.errors import Conflict, DomainError, Unavailable, invalid
from opensupp.idempotency import service as idempotency
from opensupp.timeutil import now
from opensupp.web.errors import JSON
from opensupp.web.request import Answer, Request
from opensupp.web.routing import Route

PURGE_EVERY = 3600

log = logging.getLogger("opensupp.web")

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")

#: set while a batch's calls run in one shared transaction: their idempotent answers, to be
#: saved in one statement at its end (a taken key then rolls the batch back to single calls)
deferred_saves: contextvars.ContextVar[list[tuple[Any, ...]] | None] = contextvars.ContextVar(
    "opensupp_deferred_saves", default=None)


class _KeyTaken(Exception):
    """The Idempotency-Key was saved by another request first: roll this one back."""


class Idempotency:
    """The saved answers of one process's database, kept ``ttl`` seconds."""

    def __init__(self, db: Database, ttl: int) -> None:
        self.db = db
        self.ttl = ttl

    async def create_once(self, route: Route, req: Request, data: dict[str, Any], body: Any, key: str) -> Answer:
        """A create under an Idempotency-Key: the create and its saved answer in one
        transaction; a key already taken rolls it all back and replays."""
        assert req.partner_id is not None  # authenticated: a create is no public route
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise invalid("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
        path = "/" + "/".join(s for s in req.path.split("/") if s)
        fingerprint = idempotency.fingerprint(path, data)
        deferred = deferred_saves.get()
        if deferred is not None:  # in a batch's shared transaction: saved with the others at its end
            async with self.db.transaction() as session:
                out = orjson.dumps(await route.handler(req, session, body))
            deferred.append((req.partner_id, key, fingerprint, 200, out.decode(), now()))
            return 200, [JSON], out
        for _ in range(3):
            t = now()
            try:
                async with self.db.transaction() as session:
                    out = orjson.dumps(await route.handler(req, session, body))
                    if await idempotency.save(session, partner_id=req.partner_id, key=key, fingerprint=fingerprint,
                                              now=t, ttl=self.ttl, status=200, response=out.decode()):
                        return 200, [JSON], out
                    raise _KeyTaken
            except (_KeyTaken, DomainError) as exc:
                # the writer's view (SQLite: a duplicate in the same group commit is not committed yet)
                async with self.db.transaction() as session:
                    stored = await idempotency.stored(session, partner_id=req.partner_id, key=key,
                                                      fingerprint=fingerprint, now=now(), ttl=self.ttl)
                if stored is not None:
                    status, answer = stored
                    return status, [JSON, (b"idempotent-replayed", b"true")], answer.encode()
                if not isinstance(exc, _KeyTaken):
                    raise
                # the key's holder vanished between the conflict and the look (it expired): again
        raise Conflict("A request with this Idempotency-Key is in progress; retry later.")

    async def purge_loop(self) -> None:
        """Every PURGE_EVERY seconds (and at start), the expired answers deleted."""
        while True:
            try:
                purged = 0
                while True:  # in slices, each well within OPENSUPP_DB_STATEMENT_TIMEOUT
                    async with self.db.single() as session:
                        count = await idempotency.purge_expired(session, before=now() - self.ttl)
                    purged += count
                    if count < idempotency.PURGE_SLICE:
                        break
                if purged:
                    log.info("purged %d expired idempotency keys", purged)
            except Unavailable:
                pass  # logged by the database's Health; the next hour tries again
            except Exception:
                log.warning("could not purge idempotency keys", exc_info=True)
            await asyncio.sleep(PURGE_EVERY)
