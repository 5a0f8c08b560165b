"""Idempotency keys: the same key and body within the TTL replays the first answer.

The create runs first and its answer is saved under (partner, key) in the same
transaction, by one ``INSERT ... ON CONFLICT``: two statements and no placeholder row, so
an idempotent create costs one statement more than a plain one. When the key is already
taken the insert finds the conflict (PostgreSQL waits on the primary key until the
other transaction ends; SQLite's single writer has it already), the whole transaction
rolls back, nothing of this request remains, and the stored answer is replayed, or the
request refused when its path or body differ. A create that fails (404, 409) checks for
a stored answer before it answers, so the replay of a create that did happen wins over
the error its repetition would meet (a user's e-mail now taken by that very user).
Error answers are therefore never stored, and no key ever creates two resources. An
expired key is overwritten by the next request that uses it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from opensupp.db import Session
from opensupp.errors import IdempotencyMismatch
from opensupp.idempotency.models import StoredAnswer

MAX_KEY_LENGTH = 255
_INSERT = (
    "INSERT INTO idempotency_keys (partner_id, key, fingerprint, status, response, created_at)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
)


def fingerprint(path: str, body: dict[str, Any]) -> bytes:
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(path.encode() + b"\n" + canonical).digest()


async def stored(
    session: Session, *, partner_id: int, key: str, fingerprint: bytes, now: int, ttl: int
) -> StoredAnswer | None:
    """The answer stored under ``key`` to replay, or None when the key is free (never used,
    or expired); IdempotencyMismatch when it was used for another request."""
    row = await session.fetchrow(
        "SELECT fingerprint, status, response, created_at FROM idempotency_keys WHERE partner_id = $1 AND key = $2",
        partner_id, key,
    )
    if row is None or row["created_at"] < now - ttl:
        return None
    if bytes(row["fingerprint"]) != fingerprint:
        raise IdempotencyMismatch(
            "This Idempotency-Key was already used with another request (path or body); use a new key."
        )
    return StoredAnswer(row["status"], row["response"])


async def save(
    session: Session, *, partner_id: int, key: str, fingerprint: bytes, now: int, ttl: int, status: int,
    response: str,
) -> bool:
    """Store the answer under ``key``, taking over an expired one; False when the key is taken."""
    saved = await session.fetchval(
        _INSERT + " ON CONFLICT (partner_id, key) DO UPDATE"
        " SET fingerprint = excluded.fingerprint, status = excluded.status, response = excluded.response,"
        " created_at = excluded.created_at WHERE idempotency_keys.created_at < $7 RETURNING 1",
        partner_id, key, fingerprint, status, response, now, now - ttl,
    )
    return bool(saved)


async def save_many(session: Session, rows: list[tuple[int, str, bytes, int, str, int]]) -> None:
    """Store answers (partner, key, fingerprint, status, response, created_at) in one go, for a
    batch's shared transaction; a key already there (taken, or expired) raises, and the
    caller runs its calls again one by one, where ``save`` handles both."""
    await session.executemany(_INSERT, rows)


PURGE_SLICE = 5000


async def purge_expired(session: Session, *, before: int) -> int:
    """Delete up to ``PURGE_SLICE`` keys created before ``before``; call again while it
    returns that many. A day of keys at a high rate is millions of rows: deleted in one
    statement they would hold SQLite's writer lock for seconds and outlast
    OPENSUPP_DB_STATEMENT_TIMEOUT on PostgreSQL, every hour, never to succeed again."""
    return await session.execute(
        "DELETE FROM idempotency_keys WHERE (partner_id, key) IN"
        " (SELECT partner_id, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)",
        before, PURGE_SLICE,
    )
