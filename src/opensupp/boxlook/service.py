"""The chat box's look: read (the default until the first update) and updated as a whole."""

from __future__ import annotations

import dataclasses
from typing import Any

from opensupp.boxlook.models import DEFAULT, BoxLook
from opensupp.db import ForeignKeyViolation, Session
from opensupp.db.children import account_not_found
from opensupp.timeutil import now

FIELDS = ("color", "position", "title", "welcome")
_READ = ("SELECT a.id, b.color, b.position, b.title, b.welcome FROM accounts a"
         " LEFT JOIN box_looks b ON b.account_id = a.id WHERE a.id = $1")
_UPSERT = (
    "INSERT INTO box_looks (account_id, color, position, title, welcome, updated_at) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (account_id) DO UPDATE SET color = excluded.color, position = excluded.position,"
    " title = excluded.title, welcome = excluded.welcome, updated_at = excluded.updated_at"
)


#: the account row, locked for the update (SQLite's write transaction is one at a time already)
_LOCK = {"sqlite": "", "postgresql": " FOR UPDATE OF a"}


def _look(row: Any) -> BoxLook:
    return DEFAULT if row[1] is None else BoxLook(row[1], row[2], row[3], row[4])


async def get_box_look(session: Session, *, partner_id: int, account_id: int) -> BoxLook:
    row = await session.fetchrow(_READ + " AND a.partner_id = $2", account_id, partner_id)
    if row is None:
        raise account_not_found(account_id)
    return _look(row)


async def box_look_of(session: Session, *, account_id: int) -> BoxLook:
    """The look the public box shows (the account is known by its key already)."""
    row = await session.fetchrow(_READ, account_id)
    return DEFAULT if row is None else _look(row)


async def update_box_look(session: Session, *, partner_id: int, account_id: int, changes: dict[str, Any]) -> BoxLook:
    """The stored look with ``changes`` (validated fields) applied, stored whole. The account
    row is locked first, so two partial updates do not lose each other's."""
    row = await session.fetchrow(_READ + " AND a.partner_id = $2" + _LOCK[session.dialect], account_id, partner_id)
    if row is None:
        raise account_not_found(account_id)
    look = dataclasses.replace(_look(row), **{k: v for k, v in changes.items() if k in FIELDS})
    try:
        await session.execute(_UPSERT, account_id, look.color, look.position, look.title, look.welcome, now())
    except ForeignKeyViolation:  # the account was deleted meanwhile
        raise account_not_found(account_id) from None
    return look
