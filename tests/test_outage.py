"""The database goes away (issue 12, items 6-8): a real server process, a real database.

- PostgreSQL stopped: every request answers 503 ServiceUnavailable with Retry-After at
  once, the log says so once (and once when it is back), and the server recovers with
  no restart; the SDK retries after Retry-After.
- PostgreSQL frozen (SIGSTOP: its sockets stay open, nothing answers): requests and
  /readyz answer 503 within the timeouts instead of hanging; read-only: not ready.
- SQLite on a full disk: writes answer 503, /readyz 503, the checkpointer logs and keeps
  trying, and once space is freed writes succeed, /readyz is 200 and the WAL shrinks.

The PostgreSQL tests stop and freeze a cluster of their own (tests/pgcluster.py), never
the shared server of the rest of the suite. Timings are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import LiveServer, cli_key, start_server, stop_server
from opensupp.client import Client
from pgcluster import BINDIR, Cluster, wait_for

TIMEOUT = 2  # OPENSUPP_DB_CONNECT_TIMEOUT and OPENSUPP_DB_STATEMENT_TIMEOUT of the servers here
BOUND = 10.0  # what a 503 may take at most with that: the timeouts, and plenty of slack
PASSWORD = "s3cret-in-the-url"  # trust authentication ignores it; the log must not show it
UNAVAILABLE = "is unavailable ("
BACK = "is available again after"

needs_postgres = pytest.mark.skipif(BINDIR is None and os.environ.get("OPENSUPP_REQUIRE_POSTGRES") != "1",
                                    reason="no PostgreSQL server binaries (initdb, pg_ctl) to run a cluster of our own")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    own = Cluster()
    try:
        own.start()
        yield own
    finally:
        own.remove()


class Api:
    """A live server and a key, with httpx calls that time each answer."""

    def __init__(self, server: LiveServer, key: str) -> None:
        self.server = server
        self.key = key
        self.http = httpx.Client(base_url=server.url, headers={"apiKey": key}, timeout=BOUND + 5)

    def call(self, method: str, path: str, **kw: Any) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = self.http.request(method, path, **kw)
        return response, time.monotonic() - started

    def create(self, title: str = "Acme") -> tuple[httpx.Response, float]:
        return self.call("POST", "/accounts/create", json={"title": title, "lang": "en"})

    def batch(self, n: int = 3) -> tuple[httpx.Response, float]:
        calls = [{"method": "POST", "url": "/accounts/create", "body": {"title": f"b{i}", "lang": "en"}}
                 for i in range(n)]
        return self.call("POST", "/batch", json={"requests": calls})

    def log(self) -> str:
        return self.server.log_text()


@pytest.fixture
def api(cluster: Cluster, tmp_path: Path) -> Iterator[Api]:
    """A server on the own cluster, up and thawed, its key cached (so requests fail at their
    own unit of work, not at the key's look-up)."""
    cluster.thaw()
    if not cluster.running():
        cluster.start()
    url = cluster.url.replace("postgres@", f"postgres:{PASSWORD}@")
    settings = {"OPENSUPP_DB_CONNECT_TIMEOUT": str(TIMEOUT), "OPENSUPP_DB_STATEMENT_TIMEOUT": str(TIMEOUT),
                "OPENSUPP_KEY_CACHE_SECONDS": "300"}
    server = start_server(url, tmp_path, env=settings)
    client = None
    try:
        client = Api(server, cli_key({**os.environ, "OPENSUPP_DATABASE_URL": url}))
        assert client.call("GET", "/accounts/")[0].status_code == 200
        time.sleep(0.2)  # the key's last use is recorded (a write in the background) before the test begins
        yield client
    finally:
        cluster.thaw()
        if client is not None:
            client.http.close()
        stop_server(server)


def assert_503(response: httpx.Response, seconds: float, what: str) -> None:
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text} after {seconds:.2f} s"
    assert response.json()["error"] == "ServiceUnavailable", f"{what}: {response.text}"
    assert response.headers.get("retry-after") == "5", f"{what}: no Retry-After: {dict(response.headers)}"
    assert seconds < BOUND, f"{what}: the 503 took {seconds:.2f} s (timeouts {TIMEOUT} s)"


def assert_batch_503(response: httpx.Response, seconds: float) -> None:
    assert response.status_code == 200, f"batch: {response.status_code} {response.text}"
    answers = response.json()["responses"]
    assert [a["status"] for a in answers] == [503] * len(answers), f"batch: {answers}"
    assert all(a["headers"].get("Retry-After") == "5" and a["body"]["error"] == "ServiceUnavailable"
               for a in answers), f"batch: {answers}"
    assert seconds < 2 * BOUND, f"batch: its 503s took {seconds:.2f} s"


def assert_logged_once(log: str, requests: int) -> None:
    """One line when the outage began and one when it ended, however many requests failed."""
    unavailable = [line for line in log.splitlines() if UNAVAILABLE in line]
    back = [line for line in log.splitlines() if BACK in line]
    assert len(unavailable) == 1 and len(back) == 1, (
        f"{requests} failed requests logged {len(unavailable)} 'unavailable' and {len(back)} 'available again' "
        f"lines; the log's end:\n" + "\n".join(log.splitlines()[-40:]))
    assert "Traceback" not in log and "ServerError" not in log, log[-4000:]
    assert PASSWORD not in log, "the database URL's password is in the log"


def log_once_back(api: Api) -> str:
    """The log once it says the database is back: an outage ends at a unit of work that
    succeeds a second after the last failure (Health.SETTLE), so /readyz is polled."""
    wait_for(lambda: BACK in api.log() or api.call("GET", "/readyz") and False, 10, every=0.2)
    return api.log()


def concurrently(calls: list[Callable[[], tuple[httpx.Response, float]]]) -> list[tuple[httpx.Response, float]]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


# --------------------------------------------------------------------------- item 6


@needs_postgres
def test_a_stopped_database_answers_503_with_retry_after_is_logged_once_and_recovers(cluster: Cluster, api: Api):
    created, _ = api.create()
    aid = created.json()["id"]
    cluster.stop()

    failed = 0
    timings: list[float] = []
    for _ in range(20):
        for what, (response, seconds) in [("list", api.call("GET", "/accounts/")),
                                          ("get", api.call("GET", f"/accounts/{aid}/get")),
                                          ("create", api.create()),
                                          ("readyz", api.call("GET", "/readyz"))]:
            assert_503(response, seconds, what)
            timings.append(seconds)
            failed += 1
    assert_batch_503(*api.batch())
    response, seconds = api.call("GET", "/accounts/", headers={"apiKey": "osk_not-cached-so-looked-up"})
    assert_503(response, seconds, "an uncached key, which cannot be looked up")  # not a 401
    failed += 5
    print(f"\nstopped: {failed} requests answered 503 in {min(timings):.3f}-{max(timings):.3f} s")

    # The SDK retries a 503 after its Retry-After (5 s); the database is back meanwhile.
    outcome: dict[str, Any] = {}

    def sdk_create() -> None:
        started = time.monotonic()
        with Client(api.server.url, api.key, max_retries=2) as sdk:
            outcome["account"] = sdk.accounts.create(title="after the outage", lang="en")
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=sdk_create)
    thread.start()
    time.sleep(1.0)
    cluster.start()  # the same port, the same data: opensupp is not restarted
    thread.join(30)
    assert outcome.get("account") is not None, f"the SDK's create did not succeed: {outcome}"
    assert outcome["seconds"] >= 4.5, f"the SDK retried after {outcome['seconds']:.2f} s, not after Retry-After (5 s)"
    print(f"stopped: the SDK's create succeeded after {outcome['seconds']:.2f} s (one retry after Retry-After)")

    assert api.call("GET", f"/accounts/{aid}/get")[0].status_code == 200
    assert api.create()[0].status_code == 200
    assert api.call("GET", "/readyz")[0].json() == {"status": "ok"}
    assert_logged_once(log_once_back(api), failed + 1)


# --------------------------------------------------------------------------- item 7


@needs_postgres
def test_a_frozen_database_answers_503_within_the_timeouts_and_recovers(cluster: Cluster, api: Api):
    created, _ = api.create()
    aid = created.json()["id"]
    cluster.freeze()
    try:
        started = time.monotonic()
        answers = concurrently([lambda: api.call("GET", "/accounts/")] * 6
                               + [lambda: api.call("GET", f"/accounts/{aid}/get")] * 2
                               + [api.create] * 4 + [lambda: api.call("GET", "/readyz")] * 2)
        wall = time.monotonic() - started
        for response, seconds in answers:
            assert_503(response, seconds, "a request to a frozen database")
        batch_response, batch_seconds = api.batch()
        assert_batch_503(batch_response, batch_seconds)
        later = [api.call("GET", "/accounts/"), api.create(), api.call("GET", "/readyz")]
        for response, seconds in later:
            assert_503(response, seconds, "a later request to a frozen database")
        timings = [seconds for _, seconds in answers + later]
        print(f"\nfrozen: {len(timings)} requests answered 503 in {min(timings):.2f}-{max(timings):.2f} s "
              f"(wall {wall:.2f} s for {len(answers)} at once), a batch's calls in {batch_seconds:.2f} s, "
              f"with both timeouts at {TIMEOUT} s")
    finally:
        cluster.thaw()

    ok = wait_for(lambda: api.call("GET", f"/accounts/{aid}/get")[0].status_code == 200, 10)
    assert ok, "requests still fail after the database was thawed"
    assert api.create()[0].status_code == 200
    assert api.call("GET", "/readyz")[0].status_code == 200
    assert_logged_once(log_once_back(api), len(timings) + 3)


@needs_postgres
def test_a_read_only_database_is_not_ready_and_refuses_writes_with_503(cluster: Cluster, api: Api):
    async def read_only(on: bool) -> None:
        """As a standby is: every session read-only from its start (the server's other
        sessions are closed, so that opensupp's pool opens new ones)."""
        conn = await asyncpg.connect(cluster.url, timeout=10, server_settings={"default_transaction_read_only": "off"})
        try:
            await conn.execute(f"ALTER DATABASE postgres SET default_transaction_read_only = {'on' if on else 'off'}")
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                               " WHERE datname = 'postgres' AND pid <> pg_backend_pid()")
        finally:
            await conn.close()
        time.sleep(0.5)  # opensupp's pool has seen its connections close

    asyncio.run(read_only(True))
    try:
        response, seconds = api.call("GET", "/readyz")
        assert_503(response, seconds, "readyz, read-only")
        assert "read-only" in response.json()["message"]
        assert_503(*api.create(), "a create on a read-only database")
        assert api.call("GET", "/accounts/")[0].status_code == 200, "reads still work"
        assert api.call("GET", "/readyz")[0].status_code == 503, "a read does not end a write outage"
    finally:
        asyncio.run(read_only(False))
    assert api.call("GET", "/readyz")[0].status_code == 200, "not ready once writable again"
    assert api.create()[0].status_code == 200
    assert_logged_once(log_once_back(api), 3)


# --------------------------------------------------------------------------- item 8


class FullDisk:
    """A small filesystem of its own that the test fills and frees (tmpfs, as root), or
    else a file-size limit on the server process (RLIMIT_FSIZE, set and lifted from
    outside with prlimit; CPython ignores SIGXFSZ, so a write past it fails with EFBIG).
    OPENSUPP_TEST_FULL_DISK=rlimit takes the second way as root too."""

    SIZE = 8 * 1024 * 1024

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "volume"
        self.dir.mkdir()
        self.mounted = False
        self.pid: int | None = None  # the process whose RLIMIT_FSIZE is lowered, and its limit before
        self.limit = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        if os.geteuid() == 0 and shutil.which("mount") and os.environ.get("OPENSUPP_TEST_FULL_DISK") != "rlimit":
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.SIZE}", "tmpfs", str(self.dir)],
                                  capture_output=True, text=True)
            self.mounted = done.returncode == 0
        self.how = "an 8 MiB tmpfs filled up" if self.mounted else "RLIMIT_FSIZE on the server process"

    def fill(self, pid: int, leave: int) -> None:
        """Leave about ``leave`` bytes for the database to grow into."""
        if self.mounted:
            with open(self.dir / "filler", "ab") as filler:
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                        filler.flush()
                except OSError:
                    pass
            os.truncate(self.dir / "filler", max(0, os.path.getsize(self.dir / "filler") - leave))
        else:  # the database file may grow by ``leave``, and no file beyond that size
            main = max(p.stat().st_size for p in self.dir.iterdir() if not p.name.endswith(("-wal", "-shm")))
            if self.pid is None:
                self.pid, self.limit = pid, resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (main + leave, self.limit[1]))

    def free(self) -> None:
        if self.mounted:
            (self.dir / "filler").unlink(missing_ok=True)
        elif self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                resource.prlimit(self.pid, resource.RLIMIT_FSIZE, self.limit)
            self.pid = None

    def remove(self) -> None:
        self.free()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    disk = FullDisk(tmp_path)
    try:
        yield disk
    finally:
        disk.remove()


def test_sqlite_on_a_full_disk_answers_503_and_recovers_when_space_is_freed(full_disk: FullDisk, tmp_path: Path):
    db = full_disk.dir / "opensupp.db"
    wal = Path(f"{db}-wal")
    url = f"sqlite:///{db}"
    server = start_server(url, tmp_path, env={"OPENSUPP_KEY_CACHE_SECONDS": "300"})
    try:
        api = Api(server, cli_key({**os.environ, "OPENSUPP_DATABASE_URL": url}))
        assert api.create()[0].status_code == 200
        time.sleep(1.5)  # a checkpoint has run
        full_disk.fill(server.process.pid, leave=256 * 1024)

        statuses: list[int] = []
        title = "x" * 200
        for _ in range(200):  # batches of creates until the disk is full
            response, _ = api.call("POST", "/batch", json={"requests": [
                {"method": "POST", "url": "/accounts/create", "body": {"title": title, "lang": "en"}}] * 100})
            assert response.status_code == 200, response.text
            statuses += [a["status"] for a in response.json()["responses"]]
            if 503 in statuses:
                break
        assert 503 in statuses, f"{len(statuses)} creates and the disk is still not full ({full_disk.how})"

        # No room at all now: the rest of the disk, then the WAL's slack (a failed commit's
        # frames, which the next, smaller commit may reuse) taken by writes until none fits.
        full_disk.fill(server.process.pid, leave=0)
        failing = 0
        for _ in range(300):
            create, readyz = api.create(title)[0].status_code, api.call("GET", "/readyz")[0].status_code
            statuses.append(create)
            failing = failing + 1 if create == readyz == 503 else 0
            if failing == 3:
                break
        assert failing == 3, f"writes still succeed on a full disk: {statuses[-20:]}"
        assert set(statuses) <= {200, 503}, f"statuses other than 200 and 503: {sorted(set(statuses))}"
        for what, (response, seconds) in [("create", api.create(title)), ("readyz", api.call("GET", "/readyz"))]:
            assert_503(response, seconds, f"{what} on a full disk")
        assert api.call("GET", "/accounts/?limit=1")[0].status_code == 200, "reads still work on a full disk"
        full_wal = wal.stat().st_size

        log = server.log_after("checkpoint of", timeout=10)
        assert "checkpoint of" in log, f"the checkpointer did not log its failure:\n{log[-3000:]}"
        time.sleep(4)  # several retries of the checkpointer: still one line, and it is still alive
        failing = [line for line in server.log_text().splitlines() if "checkpoint of" in line]
        assert len(failing) == 1, "\n".join(failing)
        assert api.call("GET", "/readyz")[0].status_code == 503, "ready while writes fail"

        full_disk.free()
        started = time.monotonic()
        ready = wait_for(lambda: api.call("GET", "/readyz")[0].status_code == 200, 10)
        ready_after = time.monotonic() - started
        assert ready, "/readyz is still 503 after space was freed"
        assert api.create(title)[0].status_code == 200
        shrunk = wait_for(lambda: wal.stat().st_size < full_wal // 2, 40, every=0.2)
        shrink_after = time.monotonic() - started
        assert shrunk, f"the WAL stayed at {wal.stat().st_size} bytes (it was {full_wal} on the full disk)"
        print(f"\nSQLite, {full_disk.how}: {statuses.count(200)} creates, then 503s; after space was freed "
              f"ready in {ready_after:.2f} s, the WAL from {full_wal} to {wal.stat().st_size} bytes "
              f"in {shrink_after:.2f} s")

        log = server.log_after("checkpoints of", timeout=10)
        assert len([line for line in log.splitlines() if "succeed again" in line]) == 1, log[-3000:]
        assert_logged_once(log_once_back(api), statuses.count(503) + 3)
        api.http.close()
    finally:
        full_disk.free()
        stop_server(server)


@pytest.mark.anyio
async def test_a_write_that_fills_the_disk_fails_the_writes_of_its_group_with_503s(full_disk: FullDisk):
    """A statement that spills the page cache onto a full disk makes SQLite roll the
    group's whole transaction back: the units that had ended in it lost their writes and
    must fail (Unavailable, a 503), and the next unit must open a transaction of its own
    rather than run (and commit) outside one."""
    from opensupp.db import SQLiteDatabase
    from opensupp.errors import Unavailable

    db = SQLiteDatabase(str(full_disk.dir / "group.db"))
    # small(1) must still be in the open group when big() fails in it. A unit that ends when
    # its group has been open GROUP_MAX_SECONDS (2 ms) commits the group itself: a loop
    # stalled that long inside small(1)'s unit (a busy CPU, a GC pass) committed small(1)
    # alone, which then rightly succeeded. Here only the scheduled commit ends a group, and
    # it runs a loop turn after the three units' first steps (none of them waits before its
    # unit has ended), so the grouping no longer depends on how fast the loop is.
    db.GROUP_MAX_SECONDS = 3600.0
    await db.open()
    try:
        async with db.transaction() as session:
            await session.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        full_disk.fill(os.getpid(), leave=256 * 1024)

        async def small(n: int) -> None:
            async with db.transaction() as session:
                await session.execute("INSERT INTO t (id, v) VALUES ($1, $2)", n, b"x" * 100)

        async def big() -> None:  # more than the page cache (2 MiB): it spills to the WAL mid-statement
            async with db.transaction() as session:
                await session.executemany("INSERT INTO t (v) VALUES ($1)", [(os.urandom(4096),)] * 1000)

        outcomes = await asyncio.wait_for(asyncio.gather(small(1), big(), small(2), return_exceptions=True), 30)
        kinds = [type(o).__name__ for o in outcomes]
        assert isinstance(outcomes[1], Unavailable), kinds
        assert isinstance(outcomes[0], Unavailable), f"the first write, rolled back with its group, answered {kinds}"
        assert outcomes[2] is None or isinstance(outcomes[2], Unavailable), kinds
        async with db.read() as session:
            ids = {row[0] for row in await session.fetch("SELECT id FROM t WHERE id IN (1, 2)")}
        assert ids == ({2} if outcomes[2] is None else set()), (
            f"{kinds}, rows {ids}: an answer that does not say what happened"
        )
    finally:
        full_disk.free()
    try:
        await small(3)
        async with db.read() as session:
            assert await session.fetchval("SELECT count(*) FROM t WHERE id = 3") == 1
    finally:
        await db.close()
