"""What hostile input costs the real server, next to the same request's cost on a normal input.

    python bench/hostile.py [--backend sqlite|postgres] [--accounts 20000] [--keep-temp]

Issue 12's items 1-3 (and 5, slow clients): for each hostile request, how long the event
loop was held (the longest a /healthz probe, sent every 2 ms on its own connection, waited
while the request ran), how long the request took, how many bytes it answered and how much
memory the server held after it (its RSS), beside a normal request of the same kind measured
in the same run. A measurement, not a test: it exits 0 whatever it finds. It starts the
server (``python -m opensupp serve``, this checkout's src) on a fresh database and removes
everything it made at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import random
import secrets
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson

from api import (  # bench/api.py: the same server handling
    PG_ADMIN_URL,
    Server,
    child_env,
    create_key,
    eval_trigger,
    free_port,
    run_with_cleanup,
    say,
)

HEAVY = ".{1000}.{900}"  # the issue's pattern
AB = "".join(random.Random(12).choices("ab", k=2000))  # 2,000 characters: the longest visitor string


def regex_on_url(pattern: str) -> dict[str, str]:
    return {"name": "visitor_page_url", "cmp": "regex", "value": pattern}


SIMPLE = {"name": "Hi", "actions": [{"name": "message", "agent_nick": "Ann", "message": "Hello!"}]}


# --------------------------------------------------------------------------- measuring


class Probe:
    """GET /healthz every 2 ms on a keep-alive connection of its own, in a thread; the longest
    wait is how long the server's event loop was held (it answers /healthz at once otherwise)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=300)
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.conn.request("GET", "/healthz")
                self.conn.getresponse().read()
            except (OSError, http.client.HTTPException):  # (a wait past the timeout counts whole)
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
            self.longest = max(self.longest, time.perf_counter() - started)
            time.sleep(0.002)

    def __enter__(self) -> Probe:
        self._thread.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.02)
        self._stop.set()
        self._thread.join()
        self.conn.close()


@dataclass
class Cost:
    status: int
    seconds: float
    loop_held: float
    answered: int
    rss_mib: float


class Client:
    """One keep-alive connection to the server, with the key."""

    def __init__(self, server: Server, key: str, pid: int) -> None:
        host, port = server.base.removeprefix("http://").split(":")
        self.host, self.port, self.key, self.pid = host, int(port), key, pid
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, bytes]:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        self.conn.request(method, path, body=data, headers={"apiKey": self.key})
        response = self.conn.getresponse()
        return response.status, response.read()

    def json(self, method: str, path: str, body: Any = None) -> Any:
        status, out = self.call(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {out[:300]!r}")
        return orjson.loads(out)

    def measure(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Cost:
        with Probe(self.host, self.port) as probe:
            started = time.perf_counter()
            status, out = self.call(method, path, body, raw)
            seconds = time.perf_counter() - started
        return Cost(status, seconds, probe.longest, len(out), rss_mib(self.pid))

    def account(self) -> str:
        return self.json("POST", "/accounts/create", {"title": "Acme", "lang": "en"})["id"]

    def triggers(self, aid: str, bodies: list[dict[str, Any]]) -> None:
        for i in range(0, len(bodies), 100):
            calls = [{"method": "POST", "url": f"/accounts/{aid}/triggers/create", "body": b} for b in bodies[i:i + 100]]
            answers = self.json("POST", "/batch", {"requests": calls})["responses"]
            bad = [a for a in answers if a["status"] != 200]
            if bad:
                raise RuntimeError(f"trigger create: {bad[0]}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []

    def add(self, item: str, what: str, cost: Cost, normal: Cost | None = None) -> None:
        ratio = f"{cost.loop_held / normal.loop_held:,.1f}x" if normal and normal.loop_held else ""
        self.rows.append((item, what, str(cost.status), f"{cost.seconds * 1000:,.1f}", f"{cost.loop_held * 1000:,.1f}",
                          ratio, f"{cost.answered:,}", f"{cost.rss_mib:,.1f}"))

    def note(self, item: str, what: str, figures: str) -> None:
        self.rows.append((item, what, figures))

    def print(self) -> None:
        head = ("item", "request", "status", "took ms", "loop held ms", "vs normal", "bytes answered", "RSS MiB")
        widths = [max(len(r[i]) for r in [head] + [r for r in self.rows if len(r) == len(head)]) for i in range(len(head))]
        say("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        for row in self.rows:
            if len(row) == len(head):
                say("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            else:
                say(f"{row[0].ljust(widths[0])}  {row[1]}: {row[2]}")


# --------------------------------------------------------------------------- the items


def item_regexes(client: Client, table: Table, sql: Callable[[str, tuple[Any, ...]], None]) -> None:
    aid = client.account()
    client.triggers(aid, [eval_trigger(i) for i in range(50)])
    normal = client.measure("POST", f"/accounts/{aid}/triggers/evaluate", {"visitor": {"visitor_page_url": AB}})
    table.add("1 regex", "normal: evaluate 50 triggers x 4 conditions", normal)

    issue = {**SIMPLE, "constraints": "any", "conditions": [regex_on_url(HEAVY)] * 100}
    heavy = client.account()
    table.add("1 regex", f"create a trigger of 100 x {HEAVY}", client.measure("POST", f"/accounts/{heavy}/triggers/create", issue))

    tid = client.json("POST", f"/accounts/{heavy}/triggers/create", SIMPLE)["id"]
    sql("UPDATE triggers SET conditions = $1, constraints = 'any' WHERE id = $2",
        (orjson.dumps(issue["conditions"]).decode(), int(tid)))
    table.add("1 regex", "evaluate it, stored by an older server",
              client.measure("POST", f"/accounts/{heavy}/triggers/evaluate", {"visitor": {"visitor_page_url": AB}}), normal)

    costly = client.account()
    client.triggers(costly, [{**SIMPLE, "constraints": "any",
                              "conditions": [regex_on_url(f".*a.{{97}}b{t:03d}{i}") for i in range(2)]} for t in range(40)])
    body = {"visitor": {"visitor_page_url": AB}}
    table.add("1 regex", "evaluate 40 triggers x 2 patterns of 800 instructions (2,000 chars)",
              client.measure("POST", f"/accounts/{costly}/triggers/evaluate", body), normal)
    table.add("1 regex", "the same, again (plan cached)",
              client.measure("POST", f"/accounts/{costly}/triggers/evaluate", body), normal)
    more = client.account()
    client.triggers(more, [{**SIMPLE, "constraints": "any",
                            "conditions": [regex_on_url(f".*a.{{97}}b{t:03d}{i}") for i in range(2)]} for t in range(65)])
    table.add("1 regex", "evaluate 65 such triggers (over the work bound)",
              client.measure("POST", f"/accounts/{more}/triggers/evaluate", body), normal)


def item_validation(client: Client, table: Table) -> None:
    aid = client.account()
    path = f"/accounts/{aid}/triggers/evaluate"
    normal = client.measure("POST", path, {"visitor": {"shoe_size": 1}})
    table.add("2 errors", "normal: evaluate with 1 unknown visitor key", normal)
    keys = {f"k{i}": i for i in range(30_000)}
    table.add("2 errors", "30,000 unknown keys in visitor (428 KB)", client.measure("POST", path, {"visitor": keys}), normal)
    table.add("2 errors", "30,000 unknown keys at the top level", client.measure("POST", path, keys), normal)
    most = orjson.dumps({"visitor": {f"{i:x}": 0 for i in range(110_000)}})[: 1024 * 1024 - 2] + b"}}"
    most = most[: most.rfind(b",")] + b"}}"
    table.add("2 errors", f"1 MiB of unknown keys in visitor ({len(most):,} bytes)",
              client.measure("POST", path, raw=most), normal)


def item_caches(client: Client, table: Table, accounts: int, budget_mb: int) -> None:
    """Accounts without triggers, each evaluated once: the plans cache must stay in its budget."""
    checkpoints = sorted({accounts // 4, accounts // 2, accounts})
    before = rss_mib(client.pid)
    done = 0
    for target in checkpoints:
        while done < target:
            n = min(100, target - done)
            created = client.json("POST", "/batch", {"requests": [
                {"method": "POST", "url": "/accounts/create", "body": {"title": "A", "lang": "en"}}] * n})
            ids = [r["body"]["id"] for r in created["responses"]]
            evaluated = client.json("POST", "/batch", {"requests": [
                {"method": "POST", "url": f"/accounts/{aid}/triggers/evaluate", "body": {}} for aid in ids]})
            assert all(r["status"] == 200 for r in evaluated["responses"])
            done += n
        table.note("3 caches", f"{done:,} accounts without triggers evaluated (OPENSUPP_TRIGGER_CACHE_MB={budget_mb})",
                   f"RSS {rss_mib(client.pid):,.1f} MiB (+{rss_mib(client.pid) - before:,.1f} since the first)")


# --------------------------------------------------------------------------- running


def start(tmp: Path, database_url: str, name: str, stack: contextlib.ExitStack, **settings: str) -> tuple[Server, str]:
    key = create_key(database_url, name)
    port = free_port()
    env = child_env(OPENSUPP_DATABASE_URL=database_url, OPENSUPP_ACCESS_LOG="0", **settings)
    server = Server(name, [sys.executable, "-m", "opensupp", "serve", "--port", str(port)], env,
                    tmp / f"{name}.log", f"http://127.0.0.1:{port}", "/healthz")
    stack.callback(server.stop)
    server.start()
    return server, key


def database(args: argparse.Namespace, tmp: Path, label: str, stack: contextlib.ExitStack) -> tuple[str, Callable]:
    """A fresh database URL and a function running one SQL statement on it."""
    if args.backend == "sqlite":
        path = tmp / f"{label}.db"

        def sqlite_sql(statement: str, values: tuple[Any, ...]) -> None:
            with contextlib.closing(sqlite3.connect(path)) as conn, conn:
                conn.execute(statement.replace("$1", "?1").replace("$2", "?2"), values)

        return f"sqlite:///{path}", sqlite_sql
    import asyncio

    import asyncpg

    name = f"opensupp_hostile_{label}_{secrets.token_hex(3)}"
    admin = PG_ADMIN_URL

    async def admin_sql(statement: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    stack.callback(lambda: asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')))
    url = admin.rsplit("/", 1)[0] + "/" + name

    def postgres_sql(statement: str, values: tuple[Any, ...]) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(statement, *values)
            finally:
                await conn.close()

        asyncio.run(run())

    return url, postgres_sql


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="opensupp-hostile-"))
    if not args.keep_temp:
        import shutil

        stack.callback(shutil.rmtree, tmp, True)
    say(f"opensupp hostile-input bench: {args.backend}, {socket.gethostname()}, temp {tmp}")
    table = Table()

    url, sql = database(args, tmp, "main", stack)
    server, key = start(tmp, url, "main", stack)
    client = Client(server, key, server.proc.pid)
    say("items 1 (regexes) and 2 (validation errors) ...")
    item_regexes(client, table, sql)
    item_validation(client, table)

    budget = 8
    url, _ = database(args, tmp, "caches", stack)
    server, key = start(tmp, url, "caches", stack, OPENSUPP_TRIGGER_CACHE_MB=str(budget))
    say(f"item 3 (caches): {args.accounts:,} accounts ...")
    item_caches(Client(server, key, server.proc.pid), table, args.accounts, budget)

    say()
    table.print()
    say("\nloop held: the longest a /healthz probe waited during the request (2 ms apart, on its own connection).")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--accounts", type=int, default=20_000, help="accounts without triggers for item 3")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (server logs, databases)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_with_cleanup(run, parse_args()))
