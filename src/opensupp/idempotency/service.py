"""Idempotency keys: the same key and body within the TTL replays the first answer.

``claim`` runs first inside the create's own transaction and inserts a placeholder row
keyed by (partner, key). A concurrent duplicate's insert then waits on the primary key
until the first transaction ends (PostgreSQL), or waits for the write lock (SQLite): if
the first committed it finds the stored answer and replays it; if the first failed and
rolled back, its row vanished with it and the duplicate goes ahead. Error answers are
therefore never stored, and no key ever creates two resources.
"""

from __future__ import annotations

import hashlib

import orjson

from opensupp.db import Session
from opensupp.errors import Conflict, IdempotencyMismatch

MAX_KEY_LENGTH = 255


def fingerprint(path: str, body: dict) -> bytes:
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(path.encode() + b"\n" + canonical).digest()


async def claim(
    session: Session, *, partner_id: int, key: str, fingerprint: bytes, now: int, ttl: int
) -> tuple[int, str] | None:
    """Reserve ``key``; return a stored (status, body) to replay, or None to go ahead."""
    inserted = await session.fetchval(
        "INSERT INTO idempotency_keys (partner_id, key, fingerprint, status, response, created_at)"
        " VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT (partner_id, key) DO NOTHING RETURNING 1",
        partner_id, key, fingerprint, now,
    )
    if inserted:
        return None
    row = await session.fetchrow(
        "SELECT fingerprint, status, response, created_at FROM idempotency_keys"
        " WHERE partner_id = $1 AND key = $2",
        partner_id, key,
    )
    if row is None or row[3] < now - ttl:
        # expired (or purged a moment ago): the key is free again
        await session.execute(
            "DELETE FROM idempotency_keys WHERE partner_id = $1 AND key = $2", partner_id, key
        )
        return await claim(session, partner_id=partner_id, key=key, fingerprint=fingerprint, now=now, ttl=ttl)
    if bytes(row[0]) != fingerprint:
        raise IdempotencyMismatch(
            "This Idempotency-Key was already used with another request (path or body); use a new key."
        )
    if row[1] == 0:
        raise Conflict("A request with this Idempotency-Key is still in progress; retry later.")
    return row[1], row[2]


async def record(session: Session, *, partner_id: int, key: str, status: int, response: str) -> None:
    await session.execute(
        "UPDATE idempotency_keys SET status = $1, response = $2 WHERE partner_id = $3 AND key = $4",
        status, response, partner_id, key,
    )


async def purge_expired(session: Session, *, before: int) -> int:
    return await session.execute("DELETE FROM idempotency_keys WHERE created_at < $1", before)
