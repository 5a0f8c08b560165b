"""Accounts: a partner's chat accounts. Every lookup is scoped to the partner."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from opensupp.db import Session
from opensupp.errors import NotFound
from opensupp.timeutil import now

COLUMNS = "id, title, lang, account_key, created_at"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    title: str
    lang: str
    account_key: str
    created_at: int


def new_account_key() -> str:
    """40 lowercase hex characters (160 random bits), as the chat code expects."""
    return secrets.token_hex(20)


# Appended to the SELECT of the account row that every write under an account starts with:
# on PostgreSQL it locks the row first (KEY SHARE: an account delete waits for it, an account
# update does not), so the write takes its locks in the order a delete does, account then
# rows under it, and the two never deadlock; a write that waited for a delete finds the
# account gone. (The foreign key's own check takes the same lock, but after the row under
# the account, the other way round.) SQLite has one writer at a time and no row locks.
# On a create it costs next to nothing: the lock only moves from the foreign key's check into
# the statement (the same WAL, 362 bytes an insert); the trigger create statement prepared as
# asyncpg runs it took 1.00-1.01x the time on one connection and 16 connections inserting
# into one account kept 0.985x the rate (medians of alternated runs, within this machine's noise).
LOCK_ACCOUNT = {"sqlite": "", "postgresql": " FOR KEY SHARE"}


def not_found(account_id: int) -> NotFound:
    return NotFound(f"No account {account_id}.")


async def create_account(session: Session, *, partner_id: int, title: str, lang: str) -> Account:
    row = await session.fetchrow(
        "INSERT INTO accounts (partner_id, title, lang, account_key, created_at)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}",
        partner_id, title, lang, new_account_key(), now(),
    )
    return Account(*row)


async def get_account(session: Session, *, partner_id: int, account_id: int) -> Account:
    row = await session.fetchrow(
        f"SELECT {COLUMNS} FROM accounts WHERE id = $1 AND partner_id = $2", account_id, partner_id
    )
    if row is None:
        raise not_found(account_id)
    return Account(*row)


async def list_accounts(session: Session, *, partner_id: int, after: int, limit: int) -> list[Account]:
    rows = await session.fetch(
        f"SELECT {COLUMNS} FROM accounts WHERE partner_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        partner_id, after, limit,
    )
    return [Account(*row) for row in rows]


async def update_account(
    session: Session, *, partner_id: int, account_id: int, changes: dict[str, Any]
) -> Account:
    """Apply ``changes`` (title, lang); with none, answer the account unchanged."""
    if not changes:
        return await get_account(session, partner_id=partner_id, account_id=account_id)
    columns = [c for c in ("title", "lang") if c in changes]
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=3))
    row = await session.fetchrow(
        f"UPDATE accounts SET {sets} WHERE id = $1 AND partner_id = $2 RETURNING {COLUMNS}",
        account_id, partner_id, *(changes[c] for c in columns),
    )
    if row is None:
        raise not_found(account_id)
    return Account(*row)


async def delete_account(session: Session, *, partner_id: int, account_id: int) -> None:
    """Delete the account and, through ON DELETE CASCADE, everything under it (as much as
    the partner made: a statement that may take long)."""
    deleted = await session.execute_long(
        "DELETE FROM accounts WHERE id = $1 AND partner_id = $2", account_id, partner_id
    )
    if not deleted:
        raise not_found(account_id)
