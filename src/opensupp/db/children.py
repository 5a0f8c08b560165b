"""SQL for the tables that live under an account (users, triggers, ...), in one place.

Every statement is scoped to the partner through the account, in a single statement, so a
create is one round trip and no id of another partner (or of another of the partner's
accounts) is ever read, changed or deleted. A write locks the account row before the rows
under it (``LOCK_ACCOUNT``), so it never deadlocks with the account's delete: it lands before
the delete (which then deletes it too) or finds the account gone.

A table answers records: each row read is turned into its ``record`` (a slots dataclass of
the domain, or a function building one) once, here, so no caller reads a row by position.
Records are not ``frozen``: a frozen dataclass sets each field through ``object.__setattr__``,
which made building one cost several times as much, once per row on every read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from opensupp.db import ForeignKeyViolation, Row, Session
from opensupp.errors import NotFound

R = TypeVar("R")

# Appended to the SELECT of the account row that every write under an account starts with:
# on PostgreSQL it locks the row first (KEY SHARE: an account delete waits for it, an account
# update does not), so the write takes its locks in the order a delete does, account then
# rows under it, and the two never deadlock; a write that waited for a delete finds the
# account gone. (The foreign key's own check takes the same lock, but after the row under
# the account, the other way round.) SQLite has one writer at a time and no row locks.
# On a create it costs next to nothing: the lock only moves from the foreign key's check into
# the statement.
LOCK_ACCOUNT = {"sqlite": "", "postgresql": " FOR KEY SHARE"}

OWNED = "EXISTS (SELECT 1 FROM accounts a WHERE a.id = $2 AND a.partner_id = $3)"
# for an update or a delete: the same, with the account row locked (on PostgreSQL an InitPlan,
# run before the row under the account is touched)
OWNED_LOCKED = {dialect: f"{OWNED[:-1]}{lock})" for dialect, lock in LOCK_ACCOUNT.items()}


def account_not_found(account_id: int) -> NotFound:
    """The error of an account that is not there, or not the partner's (the same answer)."""
    return NotFound(f"No account {account_id}.")


class ChildTable(Generic[R]):
    """The account-scoped reads and writes of one table under an account.

    ``columns`` are what a read returns, ``"id"`` first; ``record`` builds what a read
    answers from a row's values, in that order (a dataclass whose fields are the columns,
    or a function); without one, a read answers the row itself. ``version``: a column every
    UPDATE increments (``version = version + 1``), or None. ``page_bytes``: for rows that can
    be large (a trigger: up to ~150 KB), a page of a list stops once its rows pass this many
    bytes of text (at least one row), or None.
    """

    __slots__ = ("table", "noun", "columns", "version", "page_bytes", "record", "select")

    @overload
    def __init__(
        self: ChildTable[Row], table: str, noun: str, columns: tuple[str, ...], *,
        version: str | None = None, page_bytes: int | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self, table: str, noun: str, columns: tuple[str, ...], *,
        version: str | None = None, page_bytes: int | None = None, record: Callable[..., R],
    ) -> None: ...

    def __init__(
        self, table: str, noun: str, columns: tuple[str, ...], *,
        version: str | None = None, page_bytes: int | None = None, record: Callable[..., Any] | None = None,
    ) -> None:
        if isinstance(record, type) and dataclasses.is_dataclass(record):
            names = tuple(f.name for f in dataclasses.fields(record))
            if names != columns:
                raise TypeError(f"{record.__name__}'s fields {names} are not the columns {columns} of {table}")
        self.table = table
        self.noun = noun  # "user", for messages
        self.columns = columns
        self.version = version
        self.page_bytes = page_bytes
        self.record = record
        self.select = ", ".join(columns)

    def not_found(self, item_id: int, account_id: int) -> NotFound:
        return NotFound(f"No {self.noun} {item_id} in account {account_id}.")

    def _one(self, row: Row) -> R:
        return row if self.record is None else self.record(*row)  # type: ignore[return-value]  # no record: R is Row

    async def insert(
        self, session: Session, *, partner_id: int, account_id: int, values: dict[str, Any],
        defaults: dict[str, str] | None = None,
    ) -> R:
        """Insert one row under the account; ``defaults`` are SQL expressions over the
        account row ``a`` used where a value is None (``{"lang": "a.lang"}``)."""
        defaults = defaults or {}
        names = list(values)
        exprs = [
            f"COALESCE(${i}, {defaults[n]})" if n in defaults else f"${i}"
            for i, n in enumerate(names, start=3)
        ]
        try:
            row = await session.fetchrow(
                f"INSERT INTO {self.table} (account_id, {', '.join(names)})"
                f" SELECT a.id, {', '.join(exprs)} FROM accounts a WHERE a.id = $1 AND a.partner_id = $2"
                f"{LOCK_ACCOUNT[session.dialect]} RETURNING {self.select}",
                account_id, partner_id, *values.values(),
            )
        except ForeignKeyViolation:  # the account was deleted meanwhile
            row = None
        if row is None:
            raise account_not_found(account_id)
        return self._one(row)

    async def get(self, session: Session, *, partner_id: int, account_id: int, item_id: int) -> R:
        row = await session.fetchrow(
            f"SELECT {self.select} FROM {self.table} WHERE id = $1 AND account_id = $2 AND {OWNED}",
            item_id, account_id, partner_id,
        )
        if row is None:
            raise self.not_found(item_id, account_id)
        return self._one(row)

    async def list(
        self, session: Session, *, partner_id: int, account_id: int, after: int, limit: int
    ) -> tuple[list[R], bool]:
        """Up to ``limit`` rows after the id ``after``, and whether more follow. With
        ``page_bytes``, read in chunks sized from the rows read so far, and the page ends
        once its rows pass that many bytes: a page of large rows never holds 1000 of them."""
        rows: list[Row] = []
        size = 0
        chunk = limit if self.page_bytes is None else 8
        while True:
            want = min(chunk, limit - len(rows))
            got = await session.fetch(
                f"SELECT {self.select} FROM {self.table} WHERE account_id = $2 AND {OWNED} AND id > $1"
                " ORDER BY id LIMIT $4",
                after, account_id, partner_id, want + 1,
            )
            rows += got[:want]
            more = len(got) > want
            if not more or len(rows) == limit or self.page_bytes is None:
                break
            size += sum(len(value) for row in got[:want] for value in row if isinstance(value, str))
            if size >= self.page_bytes:
                break
            after = rows[-1]["id"]
            chunk = max(8, int((self.page_bytes - size) * len(rows) / max(size, 1)))
        if not rows:
            owned = await session.fetchval(
                "SELECT 1 FROM accounts WHERE id = $1 AND partner_id = $2", account_id, partner_id
            )
            if owned is None:
                raise account_not_found(account_id)
        record = self.record
        if record is None:
            return rows, more  # type: ignore[return-value]  # no record: R is Row (__init__'s overloads)
        return [record(*row) for row in rows], more

    async def update(
        self, session: Session, *, partner_id: int, account_id: int, item_id: int, values: dict[str, Any]
    ) -> R:
        if not values:
            return await self.get(session, partner_id=partner_id, account_id=account_id, item_id=item_id)
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=4))
        if self.version is not None:
            sets += f", {self.version} = {self.version} + 1"
        try:
            row = await session.fetchrow(
                f"UPDATE {self.table} SET {sets} WHERE id = $1 AND account_id = $2"
                f" AND {OWNED_LOCKED[session.dialect]} RETURNING {self.select}",
                item_id, account_id, partner_id, *values.values(),
            )
        except ForeignKeyViolation:  # the account was deleted meanwhile
            raise account_not_found(account_id) from None
        if row is None:
            raise self.not_found(item_id, account_id)
        return self._one(row)

    async def delete(self, session: Session, *, partner_id: int, account_id: int, item_id: int) -> None:
        deleted = await session.execute(
            f"DELETE FROM {self.table} WHERE id = $1 AND account_id = $2 AND {OWNED_LOCKED[session.dialect]}",
            item_id, account_id, partner_id,
        )
        if not deleted:
            raise self.not_found(item_id, account_id)
