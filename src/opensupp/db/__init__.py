"""Data access for the request path: SQLite (stdlib sqlite3) or PostgreSQL (asyncpg).

The schema lives in SQLAlchemy ``Table`` objects (``<domain>/models.py``) and is created by
Alembic; requests run plain SQL through the drivers directly: measured, the SQLAlchemy ORM
or aiosqlite serve a small fraction of the inserts per second of sqlite3 called from async
code, and SQLAlchemy Core over asyncpg far fewer than asyncpg itself (bench/api.py measures
the path chosen).

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

When the database cannot be reached, does not answer within the timeouts, or cannot
write (a full disk, a read-only server), a unit of work raises ``errors.Unavailable``
(a 503 with Retry-After at the edge), not the driver's error (a 500), and the
database's ``Health`` logs the outage once, when it starts and when it ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from opensupp.errors import Unavailable

_T = TypeVar("_T")

log = logging.getLogger("opensupp.db")

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
    """A row as both drivers answer it (``sqlite3.Row``, ``asyncpg.Record``): its values by
    position or column name, and in column order."""

    def __getitem__(self, key: int | str | slice) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Session(Protocol):
    dialect: str  # "sqlite" or "postgresql"

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...
    async def execute(self, sql: str, *args: Any) -> int: ...
    async def execute_long(self, sql: str, *args: Any) -> int: ...
    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None: ...

    def on_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await ``callback()`` once the unit of work has committed (never if it rolls back):
        what tells others of a write (the chat's events) must not run before it is durable."""


async def _run_after_commit(callbacks: list[Callable[[], Awaitable[None]]]) -> None:
    """The ``on_commit`` callbacks of a unit that committed: one failing is logged and does not
    keep the others from running (the write is durable whatever they do)."""
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            log.exception("an after-commit step failed (the write itself is committed)")


#: ``execute_long``'s timeout on PostgreSQL: a statement whose work grows with the data
LONG_STATEMENT_SECONDS = 60.0


class SingleStatementUsed(RuntimeError):
    pass


def _guard(session: Any) -> None:
    if session._spent:
        raise SingleStatementUsed(
            "a single() unit of work ran a second statement; open a transaction() instead"
        )
    session._spent = True


# --------------------------------------------------------------------------- outages


class Health:
    """Whether the database answers, as its units of work find it (one per database).

    An outage is logged twice, whatever the number of requests failing in between: one
    WARNING when the first unit of work fails, with the driver's reason (no traceback: it
    says nothing the reason does not), and one when units of work succeed again, with how
    long it lasted. (One line per failed request was 22,635 lines in 8 s.) It ends at the
    first success ``SETTLE`` seconds or more after the last failure: on a nearly full disk
    small writes still fit while larger ones fail, and a line per flip would be a flood.

    Writes are told apart: while only writes fail (a full disk, a read-only server),
    reads still succeed, and must not end the outage; only a committed write does.
    ``writes_only`` is that state, and what /readyz reads (see ``check_ready``).
    The hot path reads ``down_since`` and calls nothing while it is None.
    """

    SETTLE = 1.0
    __slots__ = ("label", "down_since", "last_failure", "writes_only", "failures")

    def __init__(self, label: str) -> None:
        self.label = label  # the URL with its password hidden, or the SQLite file
        self.down_since: float | None = None
        self.last_failure = 0.0
        self.writes_only = False
        self.failures = 0

    def failed(self, exc: Unavailable, write: bool) -> None:
        self.failures += 1
        self.last_failure = time.monotonic()
        if self.down_since is None:
            self.down_since = self.last_failure
            self.writes_only = write
            log.warning("database %s is unavailable (%s): answering 503 until it is back", self.label, _reason(exc))
        elif not write:
            self.writes_only = False

    def succeeded(self, write: bool) -> None:
        if self.down_since is None or (self.writes_only and not write):
            return
        now = time.monotonic()
        if now - self.last_failure < self.SETTLE:
            return
        log.warning("database %s is available again after %.1f s (%d units of work failed meanwhile)",
                    self.label, now - self.down_since, self.failures)
        self.down_since = None
        self.writes_only = False
        self.failures = 0


def _reason(exc: BaseException) -> str:
    """What went wrong, in one line: the driver's error (behind an Unavailable), by type and text."""
    if isinstance(exc, Unavailable):
        if exc.__cause__ is None:
            return exc.message
        cause = exc.__cause__
    else:
        cause = exc
    text = str(cause).strip().replace("\n", " ")
    if isinstance(cause, TimeoutError) and not text:  # asyncpg's command_timeout
        text = "no answer within OPENSUPP_DB_STATEMENT_TIMEOUT"
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _unavailable_in(exc: BaseException | None) -> Unavailable | None:
    """``exc`` if it is an Unavailable, or the one behind a shared unit's UnitFailed."""
    if isinstance(exc, Unavailable):
        return exc
    if isinstance(exc, UnitFailed) and isinstance(exc.__cause__, Unavailable):
        return exc.__cause__
    return None


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


#: SQLite's primary result codes that mean "not now" rather than "a bug": busy past
#: busy_timeout, a read-only file, an I/O error, a full disk, a file it cannot open.
_SQLITE_UNAVAILABLE = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
})


def _sqlite_unavailable(exc: BaseException) -> bool:
    return (isinstance(exc, sqlite3.OperationalError)
            and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_UNAVAILABLE)


class SQLiteSession:
    __slots__ = ("_conn", "_single", "_spent", "_after")
    dialect = "sqlite"  # for the rare statement the two databases spell differently

    def __init__(self, conn: sqlite3.Connection, single: bool) -> None:
        self._conn = conn
        self._single = single
        self._spent = False
        self._after: list[Callable[[], Awaitable[None]]] | None = None

    def on_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        if self._after is None:
            self._after = []
        self._after.append(callback)

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
        except sqlite3.OperationalError as exc:
            if _sqlite_unavailable(exc):
                raise Unavailable() from exc
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

    async def execute_long(self, sql: str, *args: Any) -> int:
        """``execute`` for a statement whose work grows with the data (an account's delete
        cascades through all its rows, long for an account of many triggers), in a worker thread:
        sqlite3 releases the GIL while SQLite works, so the event loop goes on meanwhile.
        The connection is this unit's alone until it ends (the writer lock)."""
        return (await _to_thread_to_the_end(self._run, sql, args)).rowcount

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        if self._single:
            _guard(self)
        try:
            self._conn.executemany(_to_sqlite(sql), args)
        except sqlite3.OperationalError as exc:
            if _sqlite_unavailable(exc):
                raise Unavailable() from exc
            raise


class _SQLiteRead:
    """Reads on the reader connection: committed data only, never another request's
    write that is still waiting for its group commit."""

    __slots__ = ("_db", "_session")

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def __aenter__(self) -> SQLiteSession:
        if self._db._reader is None:
            raise RuntimeError("database is not open")
        self._session = SQLiteSession(self._db._reader, False)
        return self._session

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        health = self._db.health
        if exc_type is None:
            if health.down_since is not None:
                health.succeeded(write=False)
            if self._session._after:  # a read commits nothing: its steps run as it ends
                await _run_after_commit(self._session._after)
        elif exc_type is Unavailable:
            health.failed(exc, write=False)


class CommitFailed(RuntimeError):
    pass


class _SQLiteWrite:
    """A unit of work on the writer connection, inside the current commit group.

    The unit runs in a SAVEPOINT of the group's transaction while holding the writer
    lock; on error it rolls back to its savepoint (leaving the other units alone); on
    success it releases the lock and waits until the group's COMMIT has returned, so no
    answer is sent for a write that is not durable yet.
    """

    __slots__ = ("_db", "_single", "_session")

    def __init__(self, db: SQLiteDatabase, single: bool) -> None:
        self._db = db
        self._single = single

    async def __aenter__(self) -> SQLiteSession:
        db = self._db
        await db._lock.acquire()
        try:
            await db._join_group()
            db._writer.execute("SAVEPOINT unit")
        except BaseException as exc:
            try:
                if _sqlite_unavailable(exc):
                    unavailable = Unavailable()
                    unavailable.__cause__ = exc
                    db.health.failed(unavailable, write=True)
                    db._check_group(exc)
                    raise unavailable from exc
                raise
            finally:
                db._lock.release()
        self._session = SQLiteSession(db._writer, self._single)
        return self._session

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        db = self._db
        if exc_type is not None:
            try:
                unavailable = _unavailable_in(exc)
                if unavailable is not None:
                    db.health.failed(unavailable, write=True)
                db._undo_unit(unavailable.__cause__ if unavailable is not None else exc)
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
        if self._session._after:
            await _run_after_commit(self._session._after)


class SQLiteDatabase:
    """SQLite in WAL mode: per process, one writer connection and one reader connection.

    Group commit: the writes of every request that runs while a COMMIT is pending share
    that COMMIT (each request in its own SAVEPOINT, so one request's failure never undoes
    another's), which costs one WAL append for many requests instead of one each. A
    request answers only after its COMMIT returned. Reads use the reader connection and
    see committed data only. Checkpoints run in a worker thread on a connection of their
    own, so their fsync never stalls the event loop. sqlite3 calls on the loop's thread
    are short (tens of microseconds); processes share the file through SQLite's locks.

    A write that fails because the file cannot be written (a full disk, a read-only file
    or mount, an I/O error) raises Unavailable; so do the writes of its commit group.
    """

    kind = "sqlite"
    CHECKPOINT_EVERY = 1.0
    CHECKPOINT_BACKOFF_MAX = 30.0  # a failing checkpoint is retried after 1, 2, 4 ... 30 s
    BUSY_SECONDS = 5.0  # how long a write waits for another process's write transaction
    GROUP_MAX_SECONDS = 0.002  # a group open this long is committed by the unit that ends it
    RESTART_FRAMES = 4096  # 16 MiB of 4 KiB pages: see _checkpoint_loop
    WAL_SIZE_LIMIT = 64 * 1024 * 1024  # the WAL file is cut back to this after a restart

    def __init__(self, path: str) -> None:
        self.path = path
        self.health = Health(path)
        # Set by open(). None before it and after close(), when a unit of work is refused
        # ("database is not open"); typed as what every unit of work uses.
        self._writer: sqlite3.Connection = None  # type: ignore[assignment]
        self._reader: sqlite3.Connection = None  # type: ignore[assignment]
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._checkpoint_now: asyncio.Event = None  # type: ignore[assignment]
        self._lock = asyncio.Lock()
        self._waiting: list[asyncio.Future[None]] = []
        self._group_open = False
        self._group_started = 0.0
        self._checkpointer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._checkpoint_now = asyncio.Event()
        self._writer = connect_sqlite(self.path)
        self._writer.execute("PRAGMA busy_timeout=0")  # waits for the write lock are _begin's
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
            self._writer = self._reader = None  # type: ignore[assignment]

    def read(self) -> _SQLiteRead | _SharedUnit:
        return _or_shared(_SQLiteRead(self))

    def single(self) -> _SQLiteWrite | _SharedUnit:
        return _or_shared(_SQLiteWrite(self, True))

    def transaction(self) -> _SQLiteWrite | _SharedUnit:
        return _or_shared(_SQLiteWrite(self, False))

    # the commit group: opened by the first writer, committed one loop turn later

    async def _join_group(self) -> None:
        if self._writer is None:
            raise RuntimeError("database is not open")
        if not self._group_open:
            await self._begin()
            self._group_open = True
            self._group_started = self._loop.time()
            self._loop.call_soon(self._schedule_commit)

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE, waiting for another process's write transaction (``--workers``
        on one SQLite file) without holding the event loop: SQLite's own busy wait sleeps in
        the calling thread, the loop's, so the writer connection has none (busy_timeout=0)
        and a busy answer is tried again here, asynchronously, for up to ``BUSY_SECONDS``;
        then the busy error (a 503) is raised."""
        delay = 0.001
        deadline = self._loop.time() + self.BUSY_SECONDS
        while True:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or self._loop.time() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

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
                with contextlib.suppress(sqlite3.Error):
                    self._writer.execute("ROLLBACK")
            self._fail_group(waiting, exc)
            return
        for future in waiting:
            if not future.done():
                future.set_result(None)
        if waiting and self.health.down_since is not None:
            self.health.succeeded(write=True)
            if self._checkpoint_now is not None:
                self._checkpoint_now.set()  # the disk may have room again: bring the WAL back down now

    def _fail_group(self, waiting: list[asyncio.Future[None]], cause: BaseException) -> None:
        """Fail the units of a group that did not commit: Unavailable (a 503) when the file
        could not be written, CommitFailed (a 500) for anything else."""
        unavailable = _sqlite_unavailable(cause) or isinstance(cause, Unavailable)
        error: Exception
        if unavailable:
            error = Unavailable()
            error.__cause__ = cause
            self.health.failed(error, write=True)
        for future in waiting:
            if not future.done():
                error = Unavailable() if unavailable else CommitFailed(f"commit failed: {cause}")
                error.__cause__ = cause
                future.set_exception(error)

    def _undo_unit(self, cause: BaseException | None) -> None:
        """Roll a unit that failed (with ``cause``) back to its savepoint; its group goes on
        without it, unless SQLite rolled the whole group back (see _check_group)."""
        writer = self._writer
        if writer.in_transaction:
            try:
                writer.execute("ROLLBACK TO unit")
                writer.execute("RELEASE unit")
            except sqlite3.OperationalError:
                if writer.in_transaction:
                    raise
        self._check_group(cause)

    def _check_group(self, cause: BaseException | None) -> None:
        """After a full disk or an I/O error SQLite may roll the group's whole transaction
        back by itself: then the units that ended in it have lost their writes, and fail
        (with ``cause``, the error that did it), and the next writer opens a new group."""
        if self._group_open and not self._writer.in_transaction:
            self._group_open = False
            waiting, self._waiting = self._waiting, []
            self._fail_group(waiting, cause or CommitFailed("the transaction was rolled back by SQLite"))

    async def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the database every second, off the event loop.

        A PASSIVE checkpoint never waits, so under a steady stream of writes it never
        catches up with the frames appended meanwhile, the WAL is never started over, and
        it grows without bound (fast, under a stream of creates), slowing every page
        lookup. So when a WAL of ``RESTART_FRAMES`` or more is left after a passive pass,
        the next pass takes the writer lock (units of work wait for it; reads go on),
        commits the open group, and runs a RESTART checkpoint, which completes and lets
        the next write start the WAL over; ``journal_size_limit`` then trims the file.

        Autocheckpoint is off, so nothing else keeps the WAL from growing: this loop must
        never die. A pass that fails (a full disk: the database file cannot grow) is
        logged once per streak of failures, retried after 1, 2, 4 ... 30 s (or as soon as
        a write commits again) on a fresh connection; the first pass that succeeds after
        a streak truncates the WAL, which grew meanwhile, to nothing.
        """
        conn: sqlite3.Connection | None = None
        delay = self.CHECKPOINT_EVERY
        failing_since: float | None = None
        shrink = False  # truncate the WAL at the next pass that can: it grew while passes failed
        try:
            while True:
                await self._pause(delay)
                try:
                    if conn is None:
                        conn = await _to_thread_to_the_end(connect_sqlite, self.path)
                    shrink = not await self._checkpoint_pass(conn, shrink)
                except Exception as exc:
                    if failing_since is None:
                        failing_since = time.monotonic()
                        log.warning("checkpoint of %s failed (%s): the WAL grows until one succeeds; "
                                    "retrying with a backoff up to %g s", self.path, _reason(exc),
                                    self.CHECKPOINT_BACKOFF_MAX)
                    if conn is not None:
                        conn.close()
                        conn = None
                    delay = min(delay * 2, self.CHECKPOINT_BACKOFF_MAX)
                    shrink = True
                    continue
                if failing_since is not None:
                    log.warning("checkpoints of %s succeed again after %.1f s",
                                self.path, time.monotonic() - failing_since)
                    failing_since = None
                delay = self.CHECKPOINT_EVERY
        finally:
            if conn is not None:
                conn.close()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when a write has just committed after an outage."""
        try:
            async with asyncio.timeout(seconds):
                await self._checkpoint_now.wait()
        except TimeoutError:
            pass
        self._checkpoint_now.clear()

    async def _checkpoint_pass(self, conn: sqlite3.Connection, truncate: bool) -> bool:
        """One pass (see _checkpoint_loop); with ``truncate``, a TRUNCATE checkpoint instead
        of a RESTART one, which empties the WAL file. False when that could not complete
        (a reader of another process was still using the WAL): the next pass tries again."""
        _, frames, _ = await _to_thread_to_the_end(_checkpoint, conn, "PASSIVE")
        if frames < self.RESTART_FRAMES and not truncate:
            return True
        async with self._lock:
            if self._group_open:
                self._commit_group()
            busy, _, _ = await _to_thread_to_the_end(_checkpoint, conn, "TRUNCATE" if truncate else "RESTART")
        return not busy


async def _to_thread_to_the_end(fn: Callable[..., _T], *args: Any) -> _T:
    """``asyncio.to_thread``, except that a caller cancelled meanwhile waits for the thread to
    finish before its cancellation goes on. The thread is using a sqlite3 connection that the
    caller's cleanup then closes (the checkpointer's ``finally``, ``close()``), and closing a
    connection under a statement running in another thread crashes the interpreter (seen:
    a segmentation fault in ``_checkpoint`` when a server stopped mid-checkpoint)."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        raise


def _checkpoint(conn: sqlite3.Connection, mode: str) -> tuple[int, int, int]:
    """(busy, frames in the WAL, frames copied back) after a ``mode`` checkpoint."""
    row: tuple[int, int, int] | None = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return row or (0, 0, 0)


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
    rolled back to settle a deadlock, which the edge runs once more; Unavailable when the
    server cannot be reached, does not answer in time or cannot write; anything else as it is)."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        raise UniqueViolation(exc.constraint_name or "") from exc
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        raise ForeignKeyViolation(exc.constraint_name or "") from exc
    if isinstance(exc, (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)):
        raise TransactionConflict(exc.args[0]) from exc  # the message alone, not its DETAIL lines
    if _pg_unavailable(exc):
        raise Unavailable() from exc
    raise exc


_PG_UNAVAILABLE = (
    OSError,  # refused, reset, unreachable; TimeoutError too: no answer within a timeout
    asyncpg.PostgresConnectionError,  # class 08: the connection failed, or was lost mid-statement
    asyncpg.OperatorInterventionError,  # class 57: shutting down, starting up, canceled (statement_timeout)
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full, out of memory
    asyncpg.ReadOnlySQLTransactionError,  # a hot standby, or default_transaction_read_only
)


def _pg_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the server cannot serve now, rather than a bug in a statement.
    (A plain InterfaceError is both: only its "connection is closed" kind is an outage.)"""
    if isinstance(exc, _PG_UNAVAILABLE):
        return True
    return type(exc) is asyncpg.InterfaceError and "closed" in str(exc)


def _status_count(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresSession:
    __slots__ = ("_conn", "_single", "_spent", "_after")
    dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection, single: bool) -> None:
        self._conn = conn
        self._single = single
        self._spent = False
        self._after: list[Callable[[], Awaitable[None]]] | None = None

    def on_commit(self, callback: Callable[[], Awaitable[None]]) -> None:
        if self._after is None:
            self._after = []
        self._after.append(callback)

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

    async def execute_long(self, sql: str, *args: Any) -> int:
        """``execute`` for a statement whose work grows with the data, allowed
        ``LONG_STATEMENT_SECONDS`` rather than OPENSUPP_DB_STATEMENT_TIMEOUT."""
        if self._single:
            _guard(self)
        try:
            return _status_count(await self._conn.execute(sql, *args, timeout=LONG_STATEMENT_SECONDS))
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
    __slots__ = ("_db", "_mode", "_conn", "_tx", "_session")

    def __init__(self, db: PostgresDatabase, mode: str) -> None:
        self._db = db
        self._mode = mode

    async def __aenter__(self) -> PostgresSession:
        db = self._db
        conn = await db._acquire(self._mode != READ)
        if self._mode == TX:
            try:
                self._tx = conn.transaction()
                await self._tx.start()
            except BaseException as exc:
                await db._release(conn, broken=_pg_unavailable(exc))
                if isinstance(exc, Exception):
                    db._fail(exc, write=True)
                raise
        self._conn = conn
        self._session = PostgresSession(conn, self._mode == SINGLE)
        return self._session

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        db = self._db
        conn = self._conn
        write = self._mode != READ
        if exc_type is None:
            if self._mode == TX:
                try:
                    await self._tx.commit()
                except BaseException as error:
                    # a cancelled commit (the server stopping) may still be on the wire: the connection
                    # is closed, not reused, and always given back, or the pool's close would wait for it
                    await db._release(conn, broken=not isinstance(error, Exception) or _pg_unavailable(error))
                    if isinstance(error, Exception):
                        db._fail(error, write=True)
                    raise
            await db._release(conn)
            if db.health.down_since is not None:
                db.health.succeeded(write)
            if self._session._after:
                await _run_after_commit(self._session._after)
            return
        unavailable = _unavailable_in(exc)
        if unavailable is not None:
            db.health.failed(unavailable, write)
            await db._release(conn, broken=True)
            return
        if self._mode == TX:
            try:
                await self._tx.rollback()
            except Exception:  # the connection broke meanwhile: closing it is its rollback
                await db._release(conn, broken=True)
                return
        await db._release(conn)


async def _reset(conn: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool: only a rollback if a unit of
    work was interrupted mid-transaction. (asyncpg's default reset, a round trip of
    UNLISTEN/RESET ALL/advisory unlocks per release, undoes things we never do and
    costs a large share of a create's time.)"""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresDatabase:
    """A pool of asyncpg connections, every wait on the server bounded.

    ``connect_timeout`` bounds the wait for a turn at the pool's connections and then the
    opening of a new one, ``statement_timeout`` every statement (BEGIN, COMMIT and the
    pool's ROLLBACK included):
    a stopped server answers at once (refused), but a hung one (SIGSTOP, a dead network
    path) keeps its sockets open and would hold a request forever (36 s and more before
    these existed). Past either, the unit of work raises Unavailable, and a connection
    that may still have a statement in flight is closed rather than reused; closing it
    is also its rollback, so no ROLLBACK round trip waits on a server that does not answer.
    """

    kind = "postgresql"

    def __init__(self, dsn: str, pool_size: int = 10, connect_timeout: float = 5.0,
                 statement_timeout: float = 5.0) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.health = Health(make_url(dsn).render_as_string(hide_password=True))
        self._pool: asyncpg.Pool | None = None
        self._free = pool_size  # turns: units that may hold or get a connection now (see _take_turn)
        self._waiting: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    async def open(self) -> None:
        # No floor of idle connections (min_size=0): while the server is away, asyncpg's
        # upkeep of one logs a traceback at every reconnect attempt; a unit of work that
        # needs a connection makes one anyway. One is made now, so a wrong URL fails the start.
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=0, max_size=self.pool_size, reset=_reset,
            timeout=self.connect_timeout, command_timeout=self.statement_timeout,
        )
        await self._release(await self._acquire(False))

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

    async def _acquire(self, write: bool) -> Any:
        """A connection of the pool, or Unavailable within the timeouts (see _take_turn)."""
        await self._take_turn(write)
        try:
            return await self.pool.acquire()  # connecting is bounded by asyncpg's connect timeout
        except BaseException as exc:
            self._pass_turn()
            if isinstance(exc, Exception):
                self._fail(exc, write)
            raise

    async def _take_turn(self, write: bool) -> None:
        """Wait until fewer than ``pool_size`` units hold or get a connection, for at most
        ``connect_timeout``: past it the unit fails (Unavailable) when its turn would come.

        asyncpg's own acquire timeout (or an asyncio.timeout around it) sets a timer per
        unit, which costs CPU even with uvloop, and more under load, when the pool is
        always busy. Here a unit that finds a connection free pays nothing, and
        a waiting one a future: whoever passes a turn on fails the waiters whose time is
        up. That happens at the latest when a holder's statement or connect times out, so
        a request waits at most ``connect_timeout`` plus one of those for its turn."""
        if self._free > 0:
            self._free -= 1
            return
        loop = asyncio.get_running_loop()
        turn = loop.create_future()
        self._waiting.append((loop.time() + self.connect_timeout, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._pass_turn()  # it was ours already
            raise
        except TimeoutError as exc:
            self._fail(exc, write)

    def _pass_turn(self) -> None:
        """A connection is given back: the next waiter whose time is not up takes the turn."""
        waiting = self._waiting
        if waiting:
            now = asyncio.get_running_loop().time()
            while waiting:
                deadline, turn = waiting.popleft()
                if turn.done():  # its request was cancelled
                    continue
                if deadline < now:
                    turn.set_exception(TimeoutError(f"no connection within {self.connect_timeout:g} s"))
                    continue
                turn.set_result(None)
                return
        self._free += 1

    async def _release(self, conn: Any, broken: bool = False) -> None:
        """Give ``conn`` back to the pool; a broken one (its server did not answer, so a
        statement may still be in flight) is closed first, without a round trip. (A
        release waits on the server only for an interrupted unit's ROLLBACK, bounded by
        the statement timeout.)"""
        if broken:
            with contextlib.suppress(asyncpg.InterfaceError):  # it was closed (and released) already
                conn.terminate()
        try:
            await self.pool.release(conn)
        except Exception as exc:  # its reset failed, and asyncpg closed it
            log.debug("a connection was closed on its way back to the pool: %s", _reason(exc))
        finally:
            self._pass_turn()

    def _fail(self, exc: Exception, write: bool) -> NoReturn:
        """Raise ``exc`` as the services see it; an outage is noted in ``health`` first."""
        try:
            _raise_translated(exc)
        except Unavailable as unavailable:
            self.health.failed(unavailable, write)
            raise


Database = SQLiteDatabase | PostgresDatabase

#: a write that changes nothing but, like any write, puts a page in the WAL or the heap
_WRITE_PROBE = "UPDATE alembic_version SET version_num = version_num"


async def check_ready(db: Database) -> None:
    """Raise Unavailable unless ``db`` can serve requests: it answers a read (within the
    timeouts), PostgreSQL is not read-only (a standby in recovery, or
    default_transaction_read_only), and writes have not been failing.

    A write is probed only while the last write failed for want of the database (a full
    disk, a read-only file): Health remembers that failure until a write commits, so
    /readyz says "not ready" for as long as it lasts, and the probe is what notices the
    end (space freed) without waiting for a partner's write. Probing on every call
    instead would make each load balancer poll a write, queued with the requests' writes.
    """
    recovery = read_only = False
    async with db.read() as session:
        if session.dialect == "postgresql":
            row = await session.fetchrow(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'")
            if row is not None:  # (a SELECT without FROM answers its one row)
                recovery, read_only = row
        else:
            await session.fetchval("SELECT 1")
    if recovery or read_only:  # reads work (the read above ended no outage of writes)
        what = "a standby in recovery" if recovery else "default_transaction_read_only"
        exc = Unavailable(f"The service is unavailable: its database is read-only ({what}).")
        db.health.failed(exc, write=True)
        raise exc
    if db.health.writes_only:
        async with db.transaction() as session:
            await session.execute(_WRITE_PROBE)


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


def open_database(url: str, pool_size: int = 10, connect_timeout: float = 5.0,
                  statement_timeout: float = 5.0) -> Database:
    kind, target = parse_url(url)
    if kind == "sqlite":
        return SQLiteDatabase(target)
    return PostgresDatabase(target, pool_size=pool_size, connect_timeout=connect_timeout,
                            statement_timeout=statement_timeout)


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
