"""Accounts: a partner's chat accounts. Every lookup is scoped to the partner."""

from __future__ import annotations

import secrets
from typing import Any

from opensupp.accounts.models import COLUMNS, Account
from opensupp.db import Session
from opensupp.db.children import account_not_found
from opensupp.timeutil import now


def new_account_key() -> str:
    """40 lowercase hex characters (160 random bits), as the chat code expects."""
    return secrets.token_hex(20)


async def create_account(session: Session, *, partner_id: int, title: str, lang: str) -> Account:
    row = await session.fetchrow(
        "INSERT INTO accounts (partner_id, title, lang, account_key, created_at)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}",
        partner_id, title, lang, new_account_key(), now(),
    )
    assert row is not None  # an INSERT ... RETURNING answers its row
    return Account(*row)


async def get_account(session: Session, *, partner_id: int, account_id: int) -> Account:
    row = await session.fetchrow(
        f"SELECT {COLUMNS} FROM accounts WHERE id = $1 AND partner_id = $2", account_id, partner_id
    )
    if row is None:
        raise account_not_found(account_id)
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
        raise account_not_found(account_id)
    return Account(*row)


async def delete_account(session: Session, *, partner_id: int, account_id: int) -> None:
    """Delete the account and, through ON DELETE CASCADE, everything under it (as much as
    the partner made: a statement that may take long)."""
    deleted = await session.execute_long(
        "DELETE FROM accounts WHERE id = $1 AND partner_id = $2", account_id, partner_id
    )
    if not deleted:
        raise account_not_found(account_id)
