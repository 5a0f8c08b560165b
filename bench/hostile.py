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
import random
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
            calls = [{"method": "POST", "url": f"/accounts/{aid}/triggers/create", "body": b}
                     for b in bodies[i:i + 100]]
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
        measured = [head] + [r for r in self.rows if len(r) == len(head)]
        widths = [max(len(r[i]) for r in measured) for i in range(len(head))]
        say("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
        for row in self.rows:
            if len(row) == len(head):
                say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
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
    table.add("1 regex", f"create a trigger of 100 x {HEAVY}",
              client.measure("POST", f"/accounts/{heavy}/triggers/create", issue))

    tid = client.json("POST", f"/accounts/{heavy}/triggers/create", SIMPLE)["id"]
    sql("UPDATE triggers SET conditions = $1, constraints = 'any' WHERE id = $2",
        (orjson.dumps(issue["conditions"]).decode(), int(tid)))
    table.add("1 regex", "evaluate it, stored by an older server",
              client.measure("POST", f"/accounts/{heavy}/triggers/evaluate", {"visitor": {"visitor_page_url": AB}}),
              normal)

    costly = client.account()
    client.triggers(costly, [
        {**SIMPLE, "constraints": "any", "conditions": [regex_on_url(f".*a.{{97}}b{t:03d}{i}") for i in range(2)]}
        for t in range(40)
    ])
    body = {"visitor": {"visitor_page_url": AB}}
    table.add("1 regex", "evaluate 40 triggers x 2 patterns of 800 instructions (2,000 chars)",
              client.measure("POST", f"/accounts/{costly}/triggers/evaluate", body), normal)
    table.add("1 regex", "the same, again (plan cached)",
              client.measure("POST", f"/accounts/{costly}/triggers/evaluate", body), normal)
    more = client.account()
    client.triggers(more, [
        {**SIMPLE, "constraints": "any", "conditions": [regex_on_url(f".*a.{{97}}b{t:03d}{i}") for i in range(2)]}
        for t in range(65)
    ])
    table.add("1 regex", "evaluate 65 such triggers (over the work bound)",
              client.measure("POST", f"/accounts/{more}/triggers/evaluate", body), normal)


def item_validation(client: Client, table: Table) -> None:
    aid = client.account()
    path = f"/accounts/{aid}/triggers/evaluate"
    normal = client.measure("POST", path, {"visitor": {"shoe_size": 1}})
    table.add("2 errors", "normal: evaluate with 1 unknown visitor key", normal)
    keys = {f"k{i}": i for i in range(30_000)}
    table.add("2 errors", "30,000 unknown keys in visitor (428 KB)",
              client.measure("POST", path, {"visitor": keys}), normal)
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


# --------------------------------------------------------------------------- item 5: slow clients


def raw_socket(client: Client) -> socket.socket:
    sock = socket.create_connection((client.host, client.port), timeout=5)
    sock.setblocking(False)
    return sock


def closed_or_answered(sock: socket.socket, got: bytearray) -> bool:
    """Read what has come; True once the server has closed the connection."""
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return False
        except ConnectionError:
            return True
        if not data:
            return True
        got += data


def send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(BlockingIOError, ConnectionError):
        sock.send(data)


def storm(client: Client, talkers: int, silent: int, limit: float) -> tuple[list[float | None], int]:
    """Slowloris: ``talkers`` sockets send a head a line every 0.5 s, never ending it;
    ``silent`` ones send nothing. The seconds each stayed open (None: still open at
    ``limit``), and how many were answered 408."""
    socks = [raw_socket(client) for _ in range(talkers + silent)]
    started = time.monotonic()
    for sock in socks[:talkers]:
        send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    open_for: list[float | None] = [None] * len(socks)
    got = [bytearray() for _ in socks]
    last_line = started
    while time.monotonic() - started < limit and None in open_for:
        time.sleep(0.05)
        if time.monotonic() - last_line >= 0.5:
            last_line = time.monotonic()
            for i in range(talkers):
                if open_for[i] is None:
                    send_quietly(socks[i], f"X-Slow-{i}: 1\r\n".encode())
        for i, sock in enumerate(socks):
            if open_for[i] is None and closed_or_answered(sock, got[i]):
                open_for[i] = time.monotonic() - started
    for sock in socks:
        sock.close()
    return open_for, sum(1 for g in got if g.startswith(b"HTTP/1.1 408"))


def item_slow_clients(client: Client, table: Table, timeout: float) -> None:
    normal = client.measure("GET", "/healthz")
    table.add("5 slow", "normal: GET /healthz", normal)
    limit = timeout + 10
    with Probe(client.host, client.port) as probe:
        result: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: result.update(storm=storm(client, 150, 50, limit)))
        thread.start()
        time.sleep(0.5)
        during = client.measure("GET", "/healthz")
        thread.join()
    open_for, answered = result["storm"]
    closed = sorted(t for t in open_for if t is not None)
    still = len(open_for) - len(closed)
    table.add("5 slow", "GET /healthz during a storm of 200 slowloris sockets", during, normal)
    table.note("5 slow",
               f"200 slowloris sockets (150 trickling a head, 50 silent), OPENSUPP_HEADER_TIMEOUT={timeout:g}",
               (f"{len(closed)} closed, median {statistics.median(closed):.1f} s, last {closed[-1]:.1f} s; "
                f"{answered} answered 408; " if closed else "") + f"{still} still open after {limit:g} s; "
               f"loop held at most {probe.longest * 1000:.1f} ms meanwhile")

    sock = raw_socket(client)
    send_quietly(sock, b"POST /accounts/create HTTP/1.1\r\nHost: x\r\napiKey: " + client.key.encode() +
                 b"\r\nContent-Length: 100\r\n\r\n{")
    started, got, ended = time.monotonic(), bytearray(), None
    while ended is None and time.monotonic() - started < limit:
        time.sleep(0.5)
        send_quietly(sock, b" ")
        if closed_or_answered(sock, got) or got:
            ended = time.monotonic() - started
    sock.close()
    status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/") else "none"
    table.note("5 slow", "a body trickled a byte every 0.5 s",
               f"answered {status} after {ended:.1f} s" if ended is not None else f"no answer after {limit:g} s")

    sock = raw_socket(client)
    send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent, got, closed_at = 0, bytearray(), None
    started = time.monotonic()
    while closed_at is None and sent < 16 * 1024 * 1024:
        send_quietly(sock, b"a" * 65536)
        sent += 65536
        time.sleep(0.001)
        if closed_or_answered(sock, got):
            closed_at = time.monotonic() - started
    sock.close()
    status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/") else "no answer"
    table.note("5 slow", "a header of 16 MB sent as fast as possible",
               f"{status}, closed after {sent // 1024:,} KiB sent" if closed_at is not None
               else f"still open after {sent // 1024:,} KiB; RSS {rss_mib(client.pid):,.1f} MiB")


def item_connection_cap(client: Client, table: Table, cap: int) -> None:
    held = []
    for _ in range(cap):
        conn = http.client.HTTPConnection(client.host, client.port, timeout=5)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        held.append(conn)
    started = time.perf_counter()
    try:
        extra = http.client.HTTPConnection(client.host, client.port, timeout=5)
        extra.request("GET", "/healthz")
        refused = f"{extra.getresponse().status} after {(time.perf_counter() - started) * 1000:.1f} ms"
        extra.close()
    except (OSError, http.client.HTTPException) as exc:
        refused = f"{type(exc).__name__} after {(time.perf_counter() - started) * 1000:.1f} ms"
    for conn in held:
        conn.close()
    time.sleep(0.2)
    again = client.measure("GET", "/healthz")
    table.note("5 slow", f"connection {cap + 1} with {cap} open (OPENSUPP_MAX_CONNECTIONS={cap})",
               f"{refused}; once they closed: {again.status} in {again.seconds * 1000:.1f} ms")


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

    timeout = 2.0
    url, _ = database(args, tmp, "slow", stack)
    server, key = start(tmp, url, "slow", stack, OPENSUPP_HEADER_TIMEOUT=str(timeout),
                        OPENSUPP_BODY_TIMEOUT=str(timeout), OPENSUPP_MAX_CONNECTIONS="512")
    say("item 5 (slow clients) ...")
    item_slow_clients(Client(server, key, server.proc.pid), table, timeout)
    cap = 64
    server, key = start(tmp, url, "cap", stack, OPENSUPP_MAX_CONNECTIONS=str(cap), OPENSUPP_KEEPALIVE_TIMEOUT="60")
    item_connection_cap(Client(server, key, server.proc.pid), table, cap)

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
