"""Data access for the request path: SQLite (stdlib sqlite3) or PostgreSQL (asyncpg).

The schema lives in SQLAlchemy ``Table`` objects (``<domain>/models.py``) and is created by
Alembic; requests run plain SQL through the drivers directly: measured on this project's
machine class, the SQLAlchemy ORM or aiosqlite insert 1.1-1.4k requests/s against 18k
for sqlite3 called from async code, and SQLAlchemy Core over asyncpg 2.5k against
5.5-10k for asyncpg itself (bench/api.py measures the path chosen).

SQL is written once, in PostgreSQL's ``$1`` placeholder style; for SQLite it is rewritten
to ``?1`` (SQLite's numbered parameters) and cached.

A unit of work is opened by the edge (request, CLI command) in one of three modes:

- ``read()``: reads only, no transaction;
- ``single()``: exactly one statement, which is its own transaction (one round trip on
  PostgreSQL instead of three); a second statement raises, so a service that grows a
  second write cannot silently lose atomicity;
- ``transaction()``: a real transaction, committed when the block ends cleanly.

On SQLite both write modes join a group commit (see ``SQLiteDatabase``).

Services take the session and never commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
import sqlite3
from pathlib import Path
from typing import Any, NoReturn, Protocol, Sequence

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

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


class ForeignKeyViolation(Exception):
    """A write referred to a row that is not there (a row written under an account that was
    deleted meanwhile); ``constraint`` is its name where the database tells it (fk_<table>_...)."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


class TransactionConflict(Exception):
    """The database rolled the unit of work back to settle a conflict with a concurrent one (a
    detected deadlock, a serialization failure): the same unit, run again, may succeed."""


class Row(Protocol):
    def __getitem__(self, key: int | str) -> Any: ...


class Session(Protocol):
    dialect: str  # "sqlite" or "postgresql"

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


# --------------------------------------------------------------------------- shared units


class UnitFailed(BaseException):
    """A unit of work failed inside ``sharing()``: the shared transaction must roll back as a
    whole. A BaseException, so that request code's ``except Exception``/``except
    DomainError`` lets it through to whoever opened the shared transaction."""


_shared: contextvars.ContextVar[Any] = contextvars.ContextVar("opensupp_shared_session", default=None)


@contextlib.contextmanager
def sharing(session: Any) -> Any:
    """Within this block every unit of work (read, single, transaction) of the current task
    runs on ``session``, inside the transaction it belongs to, and opens nothing of its own.
    A batch of calls uses it to commit once instead of once per call; a unit that fails
    raises UnitFailed, since without a savepoint of its own it cannot undo just itself."""
    token = _shared.set(session)
    try:
        yield
    finally:
        _shared.reset(token)


class _SharedUnit:
    __slots__ = ("_session",)

    def __init__(self, session: Any) -> None:
        self._session = session

    async def __aenter__(self) -> Any:
        return self._session

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, UnitFailed):
            raise UnitFailed(repr(exc)) from exc


def _or_shared(unit: Any) -> Any:
    """``unit``, or within ``sharing()`` the shared session's unit instead."""
    shared = _shared.get()
    return unit if shared is None else _SharedUnit(shared)


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
    dialect = "sqlite"  # for the rare statement the two databases spell differently

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
            if str(exc) == "FOREIGN KEY constraint failed":
                raise ForeignKeyViolation("") from exc
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


class _SQLiteRead:
    """Reads on the reader connection: committed data only, never another request's
    write that is still waiting for its group commit."""

    __slots__ = ("_db",)

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def __aenter__(self) -> SQLiteSession:
        if self._db._reader is None:
            raise RuntimeError("database is not open")
        return SQLiteSession(self._db._reader, False)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        return None


class CommitFailed(RuntimeError):
    pass


class _SQLiteWrite:
    """A unit of work on the writer connection, inside the current commit group.

    The unit runs in a SAVEPOINT of the group's transaction while holding the writer
    lock; on error it rolls back to its savepoint (leaving the other units alone); on
    success it releases the lock and waits until the group's COMMIT has returned, so no
    answer is sent for a write that is not durable yet.
    """

    __slots__ = ("_db", "_single")

    def __init__(self, db: SQLiteDatabase, single: bool) -> None:
        self._db = db
        self._single = single

    async def __aenter__(self) -> SQLiteSession:
        db = self._db
        await db._lock.acquire()
        try:
            db._join_group()
            db._writer.execute("SAVEPOINT unit")
        except BaseException:
            db._lock.release()
            raise
        return SQLiteSession(db._writer, self._single)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        db = self._db
        if exc_type is not None:
            try:
                db._writer.execute("ROLLBACK TO unit")
                db._writer.execute("RELEASE unit")
            finally:
                db._lock.release()
            return
        try:
            db._writer.execute("RELEASE unit")
            committed = db._loop.create_future()
            db._waiting.append(committed)
            if db._loop.time() - db._group_started >= db.GROUP_MAX_SECONDS:
                # A long group (a batch's shared transaction): commit it now, while holding the
                # lock. The scheduled commit would queue for the lock behind every writer
                # already waiting, and this group's answers with it.
                db._commit_group()
        finally:
            db._lock.release()
        await committed


class SQLiteDatabase:
    """SQLite in WAL mode: per process, one writer connection and one reader connection.

    Group commit: the writes of every request that runs while a COMMIT is pending share
    that COMMIT (each request in its own SAVEPOINT, so one request's failure never undoes
    another's), which costs one WAL append for many requests instead of one each. A
    request answers only after its COMMIT returned. Reads use the reader connection and
    see committed data only. Checkpoints run in a worker thread on a connection of their
    own, so their fsync never stalls the event loop. sqlite3 calls on the loop's thread
    are short (tens of microseconds); processes share the file through SQLite's locks.
    """

    kind = "sqlite"
    CHECKPOINT_EVERY = 1.0
    GROUP_MAX_SECONDS = 0.002  # a group open this long is committed by the unit that ends it
    RESTART_FRAMES = 4096  # 16 MiB of 4 KiB pages: see _checkpoint_loop
    WAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL file is cut back to this after a restart

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._waiting: list[asyncio.Future[None]] = []
        self._group_open = False
        self._group_started = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checkpointer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = connect_sqlite(self.path)
        self._writer.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint_loop
        self._writer.execute(f"PRAGMA journal_size_limit={self.WAL_SIZE_LIMIT}")
        self._reader = connect_sqlite(self.path)
        self._checkpointer = self._loop.create_task(self._checkpoint_loop())

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
            self._checkpointer = None
        async with self._lock:
            if self._group_open:
                self._commit_group()
            for conn in (self._writer, self._reader):
                if conn is not None:
                    conn.close()
            self._writer = self._reader = None

    def read(self) -> _SQLiteRead | _SharedUnit:
        return _or_shared(_SQLiteRead(self))

    def single(self) -> _SQLiteWrite | _SharedUnit:
        return _or_shared(_SQLiteWrite(self, True))

    def transaction(self) -> _SQLiteWrite | _SharedUnit:
        return _or_shared(_SQLiteWrite(self, False))

    # the commit group: opened by the first writer, committed one loop turn later

    def _join_group(self) -> None:
        if self._writer is None:
            raise RuntimeError("database is not open")
        if not self._group_open:
            self._writer.execute("BEGIN IMMEDIATE")
            self._group_open = True
            self._group_started = self._loop.time()
            self._loop.call_soon(self._schedule_commit)

    def _schedule_commit(self) -> None:
        self._loop.create_task(self._commit_when_free())

    async def _commit_when_free(self) -> None:
        async with self._lock:
            if self._group_open:
                self._commit_group()

    def _commit_group(self) -> None:
        waiting, self._waiting = self._waiting, []
        self._group_open = False
        try:
            self._writer.execute("COMMIT")
        except BaseException as exc:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
            for future in waiting:
                if not future.done():
                    future.set_exception(CommitFailed(f"commit failed: {exc}"))
            return
        for future in waiting:
            if not future.done():
                future.set_result(None)

    async def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database every second, off the event loop.

        A PASSIVE checkpoint never waits, so under a steady stream of writes it never
        catches up with the frames appended meanwhile, the WAL is never started over, and
        it grows without bound (12 MB/s under a create benchmark), slowing every page
        lookup. So when a WAL of ``RESTART_FRAMES`` or more is left after a passive pass,
        the next pass takes the writer lock (units of work wait for it; reads go on),
        commits the open group, and runs a RESTART checkpoint, which completes and lets
        the next write start the WAL over; ``journal_size_limit`` then trims the file.
        """
        conn = await asyncio.to_thread(connect_sqlite, self.path)
        try:
            while True:
                await asyncio.sleep(self.CHECKPOINT_EVERY)
                _, frames, _ = (await asyncio.to_thread(_checkpoint, conn, "PASSIVE")) or (0, 0, 0)
                if frames >= self.RESTART_FRAMES:
                    async with self._lock:
                        if self._group_open:
                            self._commit_group()
                        await asyncio.to_thread(_checkpoint, conn, "RESTART")
        finally:
            conn.close()


def _checkpoint(conn: sqlite3.Connection, mode: str) -> tuple[int, int, int] | None:
    """(busy, frames in the WAL, frames copied back) after a ``mode`` checkpoint."""
    return conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()


def connect_sqlite(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=512)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


# --------------------------------------------------------------------------- PostgreSQL


def _raise_translated(exc: Exception) -> NoReturn:
    """Raise what a driver error means to the services: the one place asyncpg's errors are
    translated (UniqueViolation for a refused unique value; ForeignKeyViolation for a row
    referring to one that is gone; TransactionConflict for a unit of work the database
    rolled back to settle a deadlock, which the edge runs once more; anything else as it is)."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        raise UniqueViolation(exc.constraint_name or "") from exc
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        raise ForeignKeyViolation(exc.constraint_name or "") from exc
    if isinstance(exc, (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)):
        raise TransactionConflict(exc.args[0]) from exc  # the message alone, not its DETAIL lines
    raise exc


def _status_count(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresSession:
    __slots__ = ("_conn", "_single", "_spent")
    dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection, single: bool) -> None:
        self._conn = conn
        self._single = single
        self._spent = False

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        if self._single:
            _guard(self)
        try:
            return await self._conn.fetch(sql, *args)
        except Exception as exc:
            _raise_translated(exc)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        if self._single:
            _guard(self)
        try:
            return await self._conn.fetchrow(sql, *args)
        except Exception as exc:
            _raise_translated(exc)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> int:
        if self._single:
            _guard(self)
        try:
            return _status_count(await self._conn.execute(sql, *args))
        except Exception as exc:
            _raise_translated(exc)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        if self._single:
            _guard(self)
        try:
            await self._conn.executemany(sql, args)
        except Exception as exc:
            _raise_translated(exc)


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


async def _reset(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: only a rollback if a unit of
    work was interrupted mid-transaction. (asyncpg's default reset, a round trip of
    UNLISTEN/RESET ALL/advisory unlocks per release, undoes things we never do and
    costs a third of a create's time.)"""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


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
            self.dsn, min_size=1, max_size=self.pool_size, command_timeout=30, reset=_reset
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def read(self) -> _PostgresUnit | _SharedUnit:
        return _or_shared(_PostgresUnit(self, READ))

    def single(self) -> _PostgresUnit | _SharedUnit:
        return _or_shared(_PostgresUnit(self, SINGLE))

    def transaction(self) -> _PostgresUnit | _SharedUnit:
        return _or_shared(_PostgresUnit(self, TX))


Database = SQLiteDatabase | PostgresDatabase


# --------------------------------------------------------------------------- URLs


URL_FORMS = "sqlite:///relative.db, sqlite:////absolute/path.db or postgresql://user:password@host:5432/db"


def parse_url(url: str) -> tuple[str, str]:
    """(kind, target): ("sqlite", file path) or ("postgresql", asyncpg DSN).

    SQLite URLs follow SQLAlchemy's convention: ``sqlite:///relative.db``,
    ``sqlite:////absolute/path.db``. Anything else is a ValueError of one line: what is
    wrong, and the accepted forms. Never a guess: SQLAlchemy reads ``sqlite://tmp/x.db`` as
    the file x.db in the current directory, which nobody means.
    """
    try:
        return _parse_url(url)
    except ValueError as exc:
        raise ValueError(f"{exc}; accepted: {URL_FORMS}") from None


def _parse_url(url: str) -> tuple[str, str]:
    if not url.strip() or url != url.strip():
        raise ValueError("the URL is empty" if not url.strip() else "the URL has spaces around it")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(_not_a_url(url)) from None
    except ValueError:  # SQLAlchemy's int() of the port
        raise ValueError("the port is not a number") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return "sqlite", _sqlite_file(url, parsed)
    if backend in ("postgresql", "postgres"):
        return "postgresql", _postgres_dsn(parsed)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def _not_a_url(url: str) -> str:
    """Why ``url`` is no URL, with the SQLite URL of the file it seems to name (never when it
    may hold a password)."""
    scheme, colon, rest = url.partition(":")
    if colon and scheme != "sqlite":
        return "not a database URL"
    path = rest if colon else url
    if "@" in path or not path.strip("/"):
        return "not a database URL"
    return f"not a database URL (for the SQLite file {path} write sqlite:///{path})"


def _sqlite_file(url: str, parsed: URL) -> str:
    database = parsed.database
    if not database or database == ":memory:" or database.endswith("/"):
        raise ValueError("an SQLite URL must name a file")
    if parsed.host or parsed.username is not None or parsed.port:
        netloc = url.split("://", 1)[1].split("/", 1)[0]
        shown, hint = (("text", "") if "@" in netloc else
                       (repr(netloc), f"; for /{netloc}/{database} write sqlite:////{netloc}/{database}"))
        raise ValueError(
            f"an SQLite URL names no host: the {shown} between // and the next / would be ignored, leaving"
            f" the file {database!r} relative to the current directory{hint}"
        )
    if parsed.query:
        raise ValueError("an SQLite URL takes no ?parameters (opensupp sets SQLite's options itself)")
    return database


def _postgres_dsn(parsed: URL) -> str:
    if not parsed.database:
        raise ValueError("a PostgreSQL URL must name the database (postgresql://.../db)")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ValueError(f"port {parsed.port} is not 1 to 65535")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


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
