"""Data access for the request path: SQLite (stdlib sqlite3) or PostgreSQL (asyncpg).

The schema lives in SQLAlchemy ``Table`` objects (``<domain>/models.py``) and is created by
Alembic; requests run plain SQL through the drivers directly, because the ORM and even
SQLAlchemy Core cost 3-10x the request rate (bench/README.md has the figures).

SQL is written once, in PostgreSQL's ``$1`` placeholder style; for SQLite it is rewritten
to ``?1`` (SQLite's numbered parameters) and cached.

A unit of work is opened by the edge (request, CLI command) in one of three modes:

- ``read()``: reads only, no transaction;
- ``single()``: exactly one statement, which is its own transaction (one round trip on
  PostgreSQL instead of three); a second statement raises, so a service that grows a
  second write cannot silently lose atomicity;
- ``transaction()``: a real transaction, committed when the block ends cleanly.

Services take the session and never commit.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any, Protocol, Sequence

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

READ, SINGLE, TX = "read", "single", "transaction"


class UniqueViolation(Exception):
    """A unique constraint refused a write; ``constraint`` is its name (uq_<table>_<cols>)."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


class Row(Protocol):
    def __getitem__(self, key: int | str) -> Any: ...


class Session(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> int: ...
    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None: ...


class SingleStatementUsed(RuntimeError):
    pass


def _guard(session: Any) -> None:
    if session._spent:
        raise SingleStatementUsed(
            "a single() unit of work ran a second statement; open a transaction() instead"
        )
    session._spent = True


# --------------------------------------------------------------------------- SQLite

_PLACEHOLDER = re.compile(r"\$(\d+)")
_sqlite_sql: dict[str, str] = {}


def _to_sqlite(sql: str) -> str:
    out = _sqlite_sql.get(sql)
    if out is None:
        out = _sqlite_sql[sql] = _PLACEHOLDER.sub(r"?\1", sql)
    return out


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")


def _sqlite_unique(exc: sqlite3.IntegrityError) -> UniqueViolation | None:
    m = _SQLITE_UNIQUE.match(str(exc))
    if not m:
        return None
    cols = [c.strip().split(".") for c in m.group(1).split(",")]
    if cols[0][0].startswith("index "):
        return UniqueViolation(cols[0][0][6:].strip("'"))
    return UniqueViolation(f"uq_{cols[0][0]}_" + "_".join(c[-1] for c in cols))


class SQLiteSession:
    __slots__ = ("_conn", "_single", "_spent")

    def __init__(self, conn: sqlite3.Connection, single: bool) -> None:
        self._conn = conn
        self._single = single
        self._spent = False

    def _run(self, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
        if self._single:
            _guard(self)
        try:
            return self._conn.execute(_to_sqlite(sql), args)
        except sqlite3.IntegrityError as exc:
            unique = _sqlite_unique(exc)
            if unique is not None:
                raise unique from exc
            raise

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return self._run(sql, args).fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return self._run(sql, args).fetchone()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = self._run(sql, args).fetchone()
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> int:
        return self._run(sql, args).rowcount

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        if self._single:
            _guard(self)
        self._conn.executemany(_to_sqlite(sql), args)


class _SQLiteUnit:
    __slots__ = ("_db", "_mode")

    def __init__(self, db: SQLiteDatabase, mode: str) -> None:
        self._db = db
        self._mode = mode

    async def __aenter__(self) -> SQLiteSession:
        db = self._db
        await db._lock.acquire()
        try:
            if self._mode == TX:
                db._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            db._lock.release()
            raise
        return SQLiteSession(db._conn, self._mode == SINGLE)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        db = self._db
        try:
            if self._mode == TX:
                if exc_type is None:
                    try:
                        db._conn.execute("COMMIT")
                    except BaseException:
                        db._conn.execute("ROLLBACK")
                        raise
                else:
                    db._conn.execute("ROLLBACK")
        finally:
            db._lock.release()


class SQLiteDatabase:
    """One connection per process, in WAL mode.

    sqlite3 calls are fast and never leave the event loop's thread; an asyncio lock
    keeps one unit of work on the connection at a time, so a transaction never
    interleaves with another request's statements even if the request awaits inside it.
    Processes share the file through SQLite's own locking (``busy_timeout``).
    """

    kind = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self._conn = connect_sqlite(self.path)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def read(self) -> _SQLiteUnit:
        return _SQLiteUnit(self, READ)

    def single(self) -> _SQLiteUnit:
        return _SQLiteUnit(self, SINGLE)

    def transaction(self) -> _SQLiteUnit:
        return _SQLiteUnit(self, TX)


def connect_sqlite(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=512
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


# --------------------------------------------------------------------------- PostgreSQL


def _status_count(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresSession:
    __slots__ = ("_conn", "_single", "_spent")

    def __init__(self, conn: asyncpg.Connection, single: bool) -> None:
        self._conn = conn
        self._single = single
        self._spent = False

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        if self._single:
            _guard(self)
        try:
            return await self._conn.fetch(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(exc.constraint_name or "") from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        if self._single:
            _guard(self)
        try:
            return await self._conn.fetchrow(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(exc.constraint_name or "") from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> int:
        if self._single:
            _guard(self)
        try:
            return _status_count(await self._conn.execute(sql, *args))
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(exc.constraint_name or "") from exc

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        if self._single:
            _guard(self)
        await self._conn.executemany(sql, args)


class _PostgresUnit:
    __slots__ = ("_db", "_mode", "_conn", "_tx")

    def __init__(self, db: PostgresDatabase, mode: str) -> None:
        self._db = db
        self._mode = mode

    async def __aenter__(self) -> PostgresSession:
        pool = self._db.pool
        self._conn = conn = await pool.acquire()
        try:
            if self._mode == TX:
                self._tx = conn.transaction()
                await self._tx.start()
        except BaseException:
            await pool.release(conn)
            raise
        return PostgresSession(conn, self._mode == SINGLE)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self._mode == TX:
                if exc_type is None:
                    await self._tx.commit()
                else:
                    await self._tx.rollback()
        finally:
            await self._db.pool.release(self._conn)


class PostgresDatabase:
    kind = "postgresql"

    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.pool_size, command_timeout=30
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def read(self) -> _PostgresUnit:
        return _PostgresUnit(self, READ)

    def single(self) -> _PostgresUnit:
        return _PostgresUnit(self, SINGLE)

    def transaction(self) -> _PostgresUnit:
        return _PostgresUnit(self, TX)


Database = SQLiteDatabase | PostgresDatabase


# --------------------------------------------------------------------------- URLs


def parse_url(url: str) -> tuple[str, str]:
    """(kind, target): ("sqlite", file path) or ("postgresql", asyncpg DSN).

    SQLite URLs follow SQLAlchemy's convention: ``sqlite:///relative.db``,
    ``sqlite:////absolute/path.db``.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValueError("an SQLite database URL must name a file: sqlite:///path/to/file.db")
        return "sqlite", parsed.database
    if backend in ("postgresql", "postgres"):
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return "postgresql", dsn
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; use sqlite:// or postgresql://")


def sqlalchemy_url(url: str) -> str:
    """The URL Alembic uses: the stdlib sqlite driver, or asyncpg."""
    kind, target = parse_url(url)
    if kind == "sqlite":
        return f"sqlite:///{target}"
    return make_url(target).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def open_database(url: str, pool_size: int = 10) -> Database:
    kind, target = parse_url(url)
    if kind == "sqlite":
        return SQLiteDatabase(target)
    return PostgresDatabase(target, pool_size=pool_size)


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
