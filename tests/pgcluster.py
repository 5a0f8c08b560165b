"""A PostgreSQL cluster of a test's own, to stop, freeze and start again.

The shared server the rest of the suite uses (conftest.py) must never be stopped or
frozen; outage tests run against this one instead: ``initdb`` + ``pg_ctl`` on a free
port of 127.0.0.1, its data and socket in a temporary directory, trust authentication,
``fsync=off`` (nothing here needs to survive a crash). initdb refuses to run as root, so
as root the cluster belongs to the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from conftest import free_port


def _bindir() -> Path | None:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    except (OSError, subprocess.CalledProcessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


BINDIR = _bindir()


class Cluster:
    """``start()``, ``stop()`` (an immediate shutdown: a crash, as far as clients can tell),
    ``freeze()``/``thaw()`` (SIGSTOP/SIGCONT to the postmaster and every backend: a hung
    server whose sockets stay open), ``remove()``."""

    def __init__(self) -> None:
        if BINDIR is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self.as_postgres = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="opensupp-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.frozen: list[int] = []
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(BINDIR / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def start(self) -> None:
        # fsync=off: nothing is lost when only the server's processes die (an immediate stop),
        # which is all these tests do; (synchronous_commit=off would lose the last commits)
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options, "-w", "start")

    def stop(self) -> None:
        self.thaw()
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def pids(self) -> list[int]:
        """The postmaster and every process it forked (backends, checkpointer, walwriter...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children: list[int] = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(Path(stat).parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """Stop the postmaster first, so that it forks nothing new, then every child."""
        self.frozen = self.pids()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    async def execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def remove(self) -> None:
        try:
            if self.running():
                self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(predicate, timeout: float, every: float = 0.05):  # type: ignore[no-untyped-def]
    """Call ``predicate`` until it returns something true (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)
