"""A unit of work the database rolled back to settle a conflict, run once more.

PostgreSQL aborts one of two transactions that wait for each other (a detected deadlock)
or, above READ COMMITTED, one that cannot be serialized; nothing of it was written, and the
same unit run again usually succeeds. The edge that opened the unit runs it once more (only
the unit: a password is not hashed again), after a short pause: run at once, it can take
the locks it held again before the transaction that won wakes up to take them, and the two
deadlock a second time (tests/test_account_races.py's deadlock tests failed so now and
then with no pause, never with it). A second conflict is a 409 the client may send
again. Inside a batch's shared transaction a unit is never retried on its own: the whole
transaction rolls back and each call runs alone (web/batch.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from opensupp.db import TransactionConflict
from opensupp.errors import Conflict

log = logging.getLogger("opensupp.web")

PAUSE = 0.02  # seconds: ample for a woken PostgreSQL backend to take its lock


async def in_unit(open_unit: Callable[[], Any], handler: Callable[..., Awaitable[Any]], req: Any, *args: Any) -> Any:
    """``handler(req, session, *args)`` in a unit of work of its own."""
    async with open_unit() as session:
        return await handler(req, session, *args)


async def once_more(conflict: TransactionConflict, what: str, run: Callable[[], Awaitable[Any]]) -> Any:
    """``run()`` again after ``conflict`` rolled its first run back; Conflict if it is rolled
    back again."""
    log.info("%s rolled back by the database (%s); running it once more", what, conflict)
    await asyncio.sleep(PAUSE)
    try:
        return await run()
    except TransactionConflict:
        raise Conflict("The request collided with concurrent ones and was rolled back; nothing "
                       "was written. Send it again.") from None
