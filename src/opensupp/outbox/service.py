"""The outbox's SQL: enqueue a delivery in the caller's transaction, claim the due ones with a
lease, record an attempt's result, list a hook's deliveries, retry one."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from opensupp.db import Row, Session
from opensupp.errors import NotFound
from opensupp.outbox.models import COLUMNS, DELIVERED, FAILED, PENDING, Delivery
from opensupp.outbox.sending import Outcome
from opensupp.timeutil import iso, now

#: seconds to wait after the 1st, 2nd, ... failed attempt; after the last, the delivery has failed
RETRY_SCHEDULE: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
RESPONSE_EXCERPT = 500  # characters of a response's body kept in the log
ERROR_EXCERPT = 500


#: the events of this process's running workers: a committed enqueue wakes them at once; on
#: PostgreSQL it also notifies ``CHANNEL`` at commit, which wakes the workers of other processes
#: (``opensupp worker``); elsewhere they find it at their next poll
_wakers: set[asyncio.Event] = set()
CHANNEL = "opensupp_outbox"


async def _wake() -> None:
    for event in _wakers:
        event.set()


def new_webhook_id() -> str:
    return "msg_" + secrets.token_urlsafe(24)


async def enqueue(
    session: Session, *, account_id: int, hook_id: int | None, event: str, payload: dict[str, Any]
) -> Delivery:
    """A pending delivery, due now, written in the caller's transaction: it is sent only if
    that transaction commits."""
    row = await _insert(session, account_id, hook_id, event, payload, new_webhook_id(), "")
    assert row is not None
    await _wake_at_commit(session)
    return Delivery(*row)


async def _wake_at_commit(session: Session) -> None:
    """The workers woken once the caller's transaction commits: this process's at once, and on
    PostgreSQL every process's (a NOTIFY is sent at commit, once per transaction however many)."""
    session.on_commit(_wake)
    if session.dialect == "postgresql":
        await session.execute(f"NOTIFY {CHANNEL}")


async def enqueue_once(
    session: Session, *, account_id: int, hook_id: int | None, event: str, payload: dict[str, Any], webhook_id: str
) -> Delivery | None:
    """As ``enqueue``, under a ``webhook_id`` of the caller's (at most 40 characters, e.g. a
    hook's report for one hour): None, and nothing written, when a delivery has it already
    (the unique index decides, so processes racing on one key enqueue it once)."""
    row = await _insert(session, account_id, hook_id, event, payload, webhook_id,
                        " ON CONFLICT (webhook_id) DO NOTHING")
    if row is None:
        return None
    await _wake_at_commit(session)
    return Delivery(*row)


async def _insert(session: Session, account_id: int, hook_id: int | None, event: str, payload: dict[str, Any],
                  webhook_id: str, conflict: str) -> Row | None:
    ts = now()
    return await session.fetchrow(
        "INSERT INTO deliveries (account_id, hook_id, event, payload, webhook_id, attempts, status, next_attempt_at, "
        f"created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $7, $7){conflict} RETURNING {COLUMNS}",
        account_id, hook_id, event, orjson.dumps(payload).decode(), webhook_id, PENDING, ts,
    )


@dataclass(slots=True)
class Claimed:
    """A claimed delivery with what sending it needs: for a hook's, its URL and secrets (the
    previous one too while a rotation's grace lasts); a delivery without a hook is a mail, its
    payload says to whom."""

    delivery: Delivery
    url: str | None = None
    secret: str | None = None
    previous_secret: str | None = None


async def any_due(session: Session, *, mail: bool = False) -> bool:
    """Whether a delivery is due: a read, so an idle worker's polls write nothing. Mails count
    only with ``mail`` (an SMTP server configured): without one they wait in the outbox."""
    return await session.fetchval(
        "SELECT 1 FROM deliveries WHERE status = $1 AND next_attempt_at <= $2"
        f"{'' if mail else ' AND hook_id IS NOT NULL'} LIMIT 1", PENDING, now()
    ) is not None


PER_HOOK = 10  # a hook's deliveries one claim takes at most: a slow receiver holds no more of a worker's slots
SCAN = 2  # rows a claim looks at per one it takes (the window in which each hook gets its share)


async def claim_due(session: Session, *, limit: int, lease: int, mail: bool = False, busy: Collection[int] = (),
                    per_hook: int = PER_HOOK, max_attempts: int = len(RETRY_SCHEDULE) + 1) -> list[Claimed]:
    """Up to ``limit`` due pending deliveries (mails too with ``mail``), each counted as an
    attempt and leased for ``lease`` seconds (moved that far forward, so no other worker claims
    it meanwhile, and it comes due again if this worker dies before it records the result).

    Fair to the hooks: at most ``per_hook`` of one hook's, none of the ``busy`` hooks' (those
    this worker has enough of in flight), so one slow or flooded receiver cannot take every
    slot. A delivery claimed ``max_attempts`` times with no result recorded (its workers died,
    or could not record it) is failed here rather than sent forever. On PostgreSQL, ``SKIP
    LOCKED`` keeps concurrent claims apart; SQLite has one writer."""
    ts = now()
    await session.execute(
        "UPDATE deliveries SET status = $1, last_error = $2, updated_at = $3 "
        "WHERE status = $4 AND next_attempt_at <= $3 AND attempts >= $5",
        FAILED, f"no result recorded after {max_attempts} attempts", ts, PENDING, max_attempts,
    )
    lock = " FOR UPDATE SKIP LOCKED" if session.dialect == "postgresql" else ""
    busy = sorted(busy)
    skip = "".join(f" AND hook_id <> ${i}" for i in range(7, 7 + len(busy)))
    rows = await session.fetch(
        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1, updated_at = $2 WHERE id IN ("
        "SELECT id FROM (SELECT id, due_at, ROW_NUMBER() OVER (PARTITION BY COALESCE(hook_id, -id)"
        " ORDER BY due_at, id) AS n FROM (SELECT id, hook_id, next_attempt_at AS due_at FROM deliveries"
        f" WHERE status = $3 AND next_attempt_at <= $2{'' if mail else ' AND hook_id IS NOT NULL'}{skip}"
        f" ORDER BY next_attempt_at, id LIMIT $5{lock}) AS due) AS ranked WHERE n <= $6 ORDER BY due_at, id LIMIT $4)"
        f" RETURNING {COLUMNS}",
        ts + lease, ts, PENDING, limit, limit * SCAN, per_hook, *busy,
    )
    return await _with_hooks(session, sorted((Delivery(*row) for row in rows), key=lambda d: d.id), ts)


async def _with_hooks(session: Session, claimed: list[Delivery], ts: int) -> list[Claimed]:
    ids = sorted({d.hook_id for d in claimed if d.hook_id is not None})
    signing: dict[int, tuple[str, str, str | None]] = {}
    for hook_id in ids:
        row = await session.fetchrow(
            "SELECT config, previous_secret, previous_secret_until FROM hooks WHERE id = $1", hook_id
        )
        if row is not None:
            config = orjson.loads(row[0])
            previous = row[1] if row[2] is not None and row[2] > ts else None
            signing[hook_id] = (config["url"], config["secret"], previous)
    result = []
    for delivery in claimed:
        if delivery.hook_id is None:
            result.append(Claimed(delivery))
        elif delivery.hook_id in signing:  # else the hook was deleted meanwhile, and its deliveries with it
            result.append(Claimed(delivery, *signing[delivery.hook_id]))
    return result


def next_delay(attempts: int, retry_after: int | None, schedule: Sequence[int]) -> int | None:
    """Seconds until the next attempt after ``attempts`` failed ones, None when that was the
    last; a Retry-After the receiver asked for is honoured, up to the schedule's longest wait."""
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1]
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(schedule)))
    return delay


async def record_attempts(session: Session, results: Sequence[tuple[Delivery, Outcome]],
                          schedule: Sequence[int] = RETRY_SCHEDULE) -> None:
    """The results of attempts, in one statement sent for all (rows in id order). Each is the
    result of the attempt ``delivery.attempts``, ignored when the delivery has been claimed
    again meanwhile (that worker's lease ran out: the newer attempt decides); a ``permanent``
    failure is not retried."""
    ts = now()
    rows = []
    for delivery, o in sorted(results, key=lambda result: result[0].id):
        delay = None if o.ok or o.permanent else next_delay(delivery.attempts, o.retry_after, schedule)
        status = DELIVERED if o.ok else (FAILED if delay is None else PENDING)
        rows.append((status, ts + (delay or 0), o.status_code, _text(o.error[:ERROR_EXCERPT]) if o.error else None,
                     _text(o.response[:RESPONSE_EXCERPT]) if o.response is not None else None, ts, delivery.id,
                     delivery.attempts, PENDING))
    await session.executemany(
        "UPDATE deliveries SET status = $1, next_attempt_at = $2, last_status_code = $3, last_error = $4, "
        "response = $5, updated_at = $6 WHERE id = $7 AND attempts = $8 AND status = $9", rows,
    )


async def record_hook_result(session: Session, *, hook_id: int, ok: bool, error: str | None,
                             disable_after: int) -> bool:
    """A hook's state after one of its deliveries' attempts: a delivered one ends its failing
    spell; a failed one starts it, or, once it has lasted ``disable_after`` seconds with nothing
    delivered, deactivates the hook with the reason shown on it. Answers whether it did."""
    if ok:
        await session.execute("UPDATE hooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL",
                              hook_id)
        return False
    ts = now()
    since = await session.fetchval(
        "UPDATE hooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 RETURNING failing_since",
        hook_id, ts,
    )
    if since is None or ts - since < disable_after:
        return False
    days = (ts - since) / 86400
    reason = (f"Deactivated at {iso(ts)}: every delivery since {iso(since)} ({days:.1f} days) failed, the last with: "
              f"{_text((error or 'no answer')[:ERROR_EXCERPT])}. Fix the receiver, then set active to true; "
              f"the failed deliveries can be retried.")
    return bool(await session.execute(
        "UPDATE hooks SET active = $2, disabled_reason = $3 WHERE id = $1 AND active", hook_id, False, reason
    ))


def _text(text: str) -> str:
    """What a receiver answered, storable: PostgreSQL's text holds no NUL (one would fail the
    whole batch's record)."""
    return text.replace("\x00", "\ufffd")


def _delivery(row: Row | None, delivery_id: int, hook_id: int) -> Delivery:
    if row is None:
        raise NotFound(f"No delivery {delivery_id} of hook {hook_id}.")
    return Delivery(*row)


async def list_deliveries(
    session: Session, *, account_id: int, hook_id: int, after: int, limit: int
) -> tuple[list[Delivery], bool]:
    """A hook's deliveries, oldest first, after the keyset cursor ``after``; and whether more follow."""
    rows = await session.fetch(
        f"SELECT {COLUMNS} FROM deliveries WHERE account_id = $1 AND hook_id = $2 AND id > $3 ORDER BY id LIMIT $4",
        account_id, hook_id, after, limit + 1,
    )
    return [Delivery(*row) for row in rows[:limit]], len(rows) > limit


async def retry_delivery(session: Session, *, account_id: int, hook_id: int, delivery_id: int) -> Delivery:
    """The delivery due again now, pending with its attempts counted anew (a failed or delivered one sent again,
    with the same webhook-id)."""
    ts = now()
    row = await session.fetchrow(
        "UPDATE deliveries SET status = $1, next_attempt_at = $2, attempts = 0, updated_at = $2 "
        f"WHERE id = $3 AND account_id = $4 AND hook_id = $5 RETURNING {COLUMNS}",
        PENDING, ts, delivery_id, account_id, hook_id,
    )
    return _delivery(row, delivery_id, hook_id)


PURGE_SLICE = 5000


async def purge_before(session: Session, *, before: int) -> int:
    """Up to ``PURGE_SLICE`` deliveries that ended (delivered or failed) before ``before``
    deleted: the log is kept that long; a pending one is never deleted."""
    return await session.execute(
        "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE status <> $1 AND updated_at < $2"
        " ORDER BY id LIMIT $3)", PENDING, before, PURGE_SLICE,
    )
