"""Password hashing: argon2id at OWASP's minimum cost (19 MiB, t=2, p=1), off the event loop.

argon2-cffi releases the GIL while hashing, so a pool of one thread per core hashes in
parallel while the event loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, HASHER.hash, password)


def _verify(password_hash: str, password: str) -> tuple[bool, bool]:
    try:
        HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False, False
    return True, HASHER.check_needs_rehash(password_hash)


async def verify_password(password_hash: str, password: str) -> tuple[bool, bool]:
    """(matches, needs a re-hash at today's parameters)."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _verify, password_hash, password)


_dummy: str | None = None


async def dummy_hash() -> str:
    """A hash of nobody's password, made once: an unknown login is verified against it, so that
    it takes as long as a wrong password."""
    global _dummy
    if _dummy is None:
        _dummy = await hash_password(secrets.token_urlsafe(16))
    return _dummy
