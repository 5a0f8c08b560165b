"""Partners and their API keys.

A key is ``osk_`` + 43 URL-safe random characters (256 bits). It is shown once, when
created; the database keeps only its SHA-256 (a slow hash is pointless for a 256-bit
random secret, and a fast one keeps authentication off the request's critical path)
and its first 12 characters, so ``keys list`` can tell keys apart.
"""

from __future__ import annotations

import hashlib
import secrets

from opensupp.db import Session, UniqueViolation
from opensupp.errors import Conflict, NotFound
from opensupp.partners.models import KeyInfo, Principal
from opensupp.timeutil import now

KEY_PREFIX = "osk_"
PREFIX_LENGTH = 12


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


async def create_partner(session: Session, *, name: str) -> int:
    try:
        return await session.fetchval(
            "INSERT INTO partners (name, created_at) VALUES ($1, $2) RETURNING id", name, now()
        )
    except UniqueViolation:
        raise Conflict(f"A partner named {name!r} already exists; pass --partner to add a key to it.") from None


async def find_partner(session: Session, *, ref: str) -> int:
    """A partner by id or by name."""
    if ref.isdigit():
        found = await session.fetchval("SELECT id FROM partners WHERE id = $1", int(ref))
        if found is not None:
            return found
    found = await session.fetchval("SELECT id FROM partners WHERE name = $1", ref)
    if found is None:
        raise NotFound(f"No partner {ref!r}.")
    return found


async def create_key(session: Session, *, partner_id: int, name: str) -> str:
    """Store a new key for the partner and return it in clear, the only time it exists so."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await session.execute(
        "INSERT INTO api_keys (partner_id, name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        partner_id,
        name,
        key[:PREFIX_LENGTH],
        hash_key(key),
        now(),
    )
    return key


async def authenticate(session: Session, *, key_hash: bytes) -> Principal | None:
    row = await session.fetchrow(
        "SELECT partner_id, id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
    return None if row is None else Principal(*row)


async def touch_key(session: Session, *, key_id: int, at: int) -> None:
    await session.execute("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", at, key_id)


async def list_keys(session: Session) -> list[KeyInfo]:
    rows = await session.fetch(
        "SELECT k.id, k.partner_id, p.name, k.name, k.prefix, k.created_at, k.last_used_at, k.revoked_at"
        " FROM api_keys k JOIN partners p ON p.id = k.partner_id ORDER BY k.id"
    )
    return [KeyInfo(*row) for row in rows]


async def revoke_key(session: Session, *, ref: str) -> KeyInfo:
    """Revoke a key named by its id or its prefix (as ``keys list`` prints them)."""
    ids = [
        key_id for (key_id,) in await session.fetch(
            "SELECT id FROM api_keys WHERE (id = $1 OR prefix = $2) AND revoked_at IS NULL",
            int(ref) if ref.isdigit() and len(ref) < 19 else -1,
            ref,
        )
    ]
    if not ids:
        raise NotFound(f"No active key {ref!r}.")
    if len(ids) > 1:
        raise Conflict(f"{ref!r} names {len(ids)} keys; use the key's id.")
    await session.execute("UPDATE api_keys SET revoked_at = $1 WHERE id = $2", now(), ids[0])
    return next(k for k in await list_keys(session) if k.id == ids[0])


async def count_active_keys(session: Session) -> int:
    return await session.fetchval("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")
