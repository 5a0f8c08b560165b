"""Fixtures: every test runs on SQLite and on a real PostgreSQL, through the real app.

PostgreSQL: ``OPENSUPP_TEST_POSTGRES_URL`` (default postgresql://postgres@127.0.0.1:5432/test)
names a server where the run creates its own fresh database and drops it at the end.
Where none answers, the PostgreSQL half skips loudly, unless OPENSUPP_REQUIRE_POSTGRES=1
(as .ci/run sets), which turns the skip into a failure.

The trigger engine's hot path (opensupp.triggers.plan) runs compiled when the install
built it: a compiled module older than its source is refused (run ``make install``), and
OPENSUPP_REQUIRE_COMPILED=1 (as .ci/run sets) refuses the pure-Python fallback.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from opensupp.app import create_app
from opensupp.config import Settings
from opensupp.db import parse_url
from opensupp.migrate import migrate
from opensupp.partners import service as partners

POSTGRES_URL = os.environ.get("OPENSUPP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("OPENSUPP_REQUIRE_POSTGRES") == "1"
_skipped_postgres: list[str] = []


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def pytest_configure(config: Any) -> None:
    from opensupp.triggers import plan

    source = Path(plan.__file__).with_name("plan.py")
    if plan.COMPILED and any(
        source.with_suffix(suffix).stat().st_mtime > Path(plan.__file__).stat().st_mtime for suffix in (".py", ".pxd")
    ):
        pytest.exit(f"{plan.__file__} is older than its source: run `make install` (or pip install -e .) again", 2)
    if os.environ.get("OPENSUPP_REQUIRE_COMPILED") == "1" and not plan.COMPILED:
        pytest.exit("OPENSUPP_REQUIRE_COMPILED=1, but opensupp.triggers.plan was not compiled (no C compiler?)", 2)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped_postgres:
        terminalreporter.write_sep("!", "PostgreSQL tests SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_skipped_postgres[0], red=True)
        terminalreporter.write_line("Set OPENSUPP_REQUIRE_POSTGRES=1 to make this a failure.", red=True)


def _postgres_admin(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(parse_url(POSTGRES_URL)[1], timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # in a thread of its own: a test may hold a running loop here (Playwright's sync API does)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def _fresh_postgres() -> tuple[str, str]:
    name = f"opensupp_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _postgres_admin(f'CREATE DATABASE "{name}"')
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc!r})."
        if REQUIRE_POSTGRES:
            pytest.fail(message + " OPENSUPP_REQUIRE_POSTGRES=1 requires it.", pytrace=False)
        _skipped_postgres.append(message)
        pytest.skip(message)
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the whole run, one per backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'opensupp.db'}"
        migrate(url)
        yield url
        return
    name, url = _fresh_postgres()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # (its asyncio.run: see _postgres_admin)
            pool.submit(migrate, url).result()
        yield url
    finally:
        _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The app of a test: its own outbox worker off (a test that needs one runs it, or makes an app with it),
    so apps do not deliver, nor make the hourly reports of, what other tests left in the shared database."""
    return Settings(database_url=database_url, key_cache_seconds=0, db_pool_size=25, outbox_worker=False)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    await application.startup()
    try:
        yield application
    finally:
        await application.shutdown()


async def new_key(app: Any, name: str | None = None) -> str:
    """A fresh partner and its key, made by the real services."""
    name = name or f"partner-{secrets.token_hex(6)}"
    async with app.db.transaction() as session:
        partner_id = await partners.create_partner(session, name=name)
        return await partners.create_key(session, partner_id=partner_id, name=name)


def client_for(app: Any, key: str | None = None) -> httpx.AsyncClient:
    headers = {"apiKey": key} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=headers)


@pytest.fixture
async def key(app: Any) -> str:
    return await new_key(app)


@pytest.fixture
async def api(app: Any, key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client authenticated as a fresh partner."""
    async with client_for(app, key) as client:
        yield client


@pytest.fixture
async def anon(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


# --------------------------------------------------------------------------- live servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def serving(app: Any, *, lifespan: str = "auto", force: bool = False) -> AsyncIterator[int]:
    """``app`` under uvicorn in this loop, on a free port (yielded) of 127.0.0.1; stopped at the end,
    gracefully, or at once with ``force`` (a test's receiver that never finishes its answer)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
            if task.done():
                task.result()  # it could not start: its error
        yield port
    finally:
        server.should_exit = True
        if force:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            await asyncio.wait_for(task, 20)


def opensupp(*args: str, env: dict[str, str], check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opensupp", *args],
        env=env, capture_output=True, text=True, timeout=120, check=check, **kw,
    )


class LiveServer:
    def __init__(self, url: str, process: subprocess.Popen[str], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def log_text(self) -> str:
        return self.log.read_text()

    def log_after(self, needle: str, timeout: float = 5.0) -> str:
        """The log once ``needle`` is in it (access lines are written in batches)."""
        deadline = time.monotonic() + timeout
        while needle not in (text := self.log_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return text


def start_server(
    database_url: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None, port: int | None = None
) -> LiveServer:
    """``opensupp serve`` as a real process, on ``port`` or a free one; returns once /healthz answers."""
    port = port or free_port()
    log = tmp_path / f"server-{port}-{time.monotonic_ns()}.log"
    full_env = {**os.environ, "OPENSUPP_DATABASE_URL": database_url, **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "opensupp", "serve", "--port", str(port), *extra],
        env=full_env, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return LiveServer(url, process, log)
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {**os.environ, "OPENSUPP_DATABASE_URL": database_url}


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(database_url, tmp_path)
    try:
        yield server
    finally:
        stop_server(server)


def cli_key(env: dict[str, str], name: str | None = None) -> str:
    out = opensupp("keys", "create", "--name", name or f"cli-{secrets.token_hex(6)}", env=env)
    return out.stdout.strip().splitlines()[-1]
