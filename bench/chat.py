"""Benchmark the chat's visitor WebSocket against a bare WebSocket echo; see bench/README.md.

    python bench/chat.py [--connections 10000] [--rate 500] [--duration 10] [--senders 500]

In one run, each server in turn (the echo of bench/ws_echo_app.py, then ours: the real
server's app, ``opensupp.app.create_app``, on a fresh SQLite, as it serves visitors: every
connect and message stored through the database's ChatCore; with ``--core none`` the
transport's ChatCore is ``BenchCore`` instead, which stores nothing, so that the transport
alone is measured), both under uvicorn with ``opensupp serve``'s settings:

1. **Idle connections.** Opens ``--connections`` WebSockets (ours: each sends its
   ``visitor.connect`` and reads the ack; the echo: one message and its echo), then reads the
   server's RSS: (RSS with them - RSS before) / connections. The clients answer the server's
   pings and ping every 20 s, as the chat box does.
2. **Round trip** at ``--rate`` messages per second spread over ``--senders`` connections
   (ours: visitors send ``chat.message`` and one agent connection receives
   ``chat.message_received``: the visitor-to-agent trip; the echo: the message back on the
   same connection), for ``--duration`` seconds after a warm-up: p50 and p99.

It prints the figures and the ratios with their targets (RSS per connection at most 1.5x the
echo's, p99 at most 2x the echo's). It is a measurement, not a test: exit code 0 whatever the
targets say. The clients are a minimal WebSocket client on asyncio protocols (a few hundred
bytes a connection), bound to many loopback addresses (127.1.x.y) so that the chat's
per-address limits see the load as many visitors, as they would be. Everything it starts is
stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import os
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
SRC_DIR = BENCH_DIR.parent / "src"
SECRET = "bench-" + "k" * 40
ACCOUNT_KEY = "be" * 20  # an accountKey's shape: 40 hex digits
ACCOUNT_ID = 1
AGENT_ID = 1
PER_ADDRESS = 40  # idle connections per source address (the chat allows 200 and 60 new visitors at once)
SENDERS_PER_ADDRESS = 4  # round-trip senders per address (the chat allows 5 messages/s an address)


# --------------------------------------------------------------------------- our server (a child process)


class BenchCore:
    """A ChatCore that stores nothing: every answer is made up in the wire shapes."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)

    async def account_by_key(self, key: str) -> int | None:
        return ACCOUNT_ID if key == ACCOUNT_KEY else None

    async def office_hours_open(self, account_id: int) -> bool:
        return True

    async def connect_visitor(self, account_id: int, vid: str, values: dict[str, Any], page: Any) -> Any:
        return {"vid": vid, "name": None, "email": None, "phone": None, "lang": "en", "group": None,
                "variables": {}, "visits": 1, "chats": 0, "pageUrl": page.url}, None

    async def update_visitor(self, account_id: int, vid: str, values: dict[str, Any]) -> dict[str, Any]:
        return {"vid": vid, **values}

    async def page_view(self, account_id: int, vid: str, page: Any) -> dict[str, Any]:
        return {"vid": vid}

    async def post_visitor_message(self, account_id: int, vid: str, text: str, client_id: str, offline: bool) -> Any:
        conversation_id = hash(vid) & 0xFFFFFFF
        message = {"id": next(self.ids), "conversationId": conversation_id, "kind": "visitor", "text": text,
                   "clientId": client_id, "userId": None, "agentNick": None, "triggerId": None,
                   "createdAt": "2026-01-01T00:00:00Z"}
        return message, {"id": conversation_id, "vid": vid, "status": "pending"}

    async def post_agent_message(self, *args: Any) -> None:
        return None

    async def messages_after(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    async def conversation(self, *args: Any) -> None:
        return None

    async def open_conversations(self, account_id: int) -> list[dict[str, Any]]:
        return []

    async def read(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def close_conversation(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def rate_conversation(self, *args: Any) -> None:
        return None

    async def assign_conversation(self, *args: Any) -> None:
        return None

    async def agent(self, account_id: int, user_id: int) -> dict[str, Any] | None:
        return {"id": user_id, "nickname": "Bench", "avatar": None} if account_id == ACCOUNT_ID else None


async def _provision(settings: Any) -> None:
    """The account (``ACCOUNT_ID``, ``ACCOUNT_KEY``) and its agent (``AGENT_ID``) in the fresh database."""
    from opensupp.accounts import service as accounts
    from opensupp.db import open_database
    from opensupp.partners import service as partners

    db = open_database(settings.resolved_database_url())
    await db.open()
    try:
        async with db.transaction() as session:
            partner_id = await partners.create_partner(session, name="bench")
            account = await accounts.create_account(session, partner_id=partner_id, title="Bench", lang="en")
            assert account.id == ACCOUNT_ID, "the bench's database is not fresh"
            await session.execute("UPDATE accounts SET account_key = $1 WHERE id = $2", ACCOUNT_KEY, ACCOUNT_ID)
            await session.execute(
                "INSERT INTO users (id, account_id, role, email, email_key, fullname, nickname, avatar, note, lang,"
                " password_hash, created_at) VALUES ($1, $2, 'agent', 'bench@example.com', 'bench@example.com',"
                " 'Bench', 'Bench', '', '', 'en', '!', 0)", AGENT_ID, ACCOUNT_ID)
    finally:
        await db.close()


def serve_ours(host: str, port: int, core: str) -> None:
    """The real server's app, as ``opensupp serve`` runs it (``core`` "none": with BenchCore)."""
    import uvicorn
    from starlette.routing import WebSocketRoute

    from opensupp.app import create_app
    from opensupp.chat.transport import ChatTransport
    from opensupp.config import settings_from_environment
    from opensupp.logs import setup_logging
    from opensupp.migrate import migrate
    from opensupp.web.server import uvicorn_options

    settings = settings_from_environment()
    setup_logging(settings.log_level, settings.log_format)
    migrate(settings.resolved_database_url())
    asyncio.run(_provision(settings))
    front = create_app(settings)
    transports = {route.endpoint.transport for route in front.site.routes
                  if isinstance(route, WebSocketRoute) and isinstance(getattr(route.endpoint, "transport", None),
                                                                      ChatTransport)}
    assert len(transports) == 1, "the site mounts no chat transport"
    transport = transports.pop()
    if core == "none":
        transport.core, transport.triggers = BenchCore(), None  # type: ignore[assignment]
    profile_to = os.environ.get("BENCH_PROFILE")  # a file: where the server's cProfile stats go (ours only)
    if profile_to:  # dumped on SIGUSR1, which ``stop`` sends first when BENCH_PROFILE is set
        import cProfile

        profile = cProfile.Profile()

        def dump(*_: Any) -> None:
            profile.disable()
            profile.dump_stats(profile_to)

        signal.signal(signal.SIGUSR1, dump)
        profile.enable()
    uvicorn.run(front, host=host, port=port, **uvicorn_options(settings))


# --------------------------------------------------------------------------- a minimal WebSocket client


class WS(asyncio.Protocol):
    """A client connection: handshake, masked text frames out, frames in (pings answered)."""

    __slots__ = ("transport", "buffer", "upgraded", "switched", "ready", "on_text", "closed")

    def __init__(self, on_text: Callable[[bytes], None] | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.switched: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.on_text = on_text
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4:]
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(f"no upgrade: {head[:60]!r}")
                return
            self.upgraded = True
            self.switched.set_result(None)
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if len(self.buffer) < offset + length:
                return
            payload, self.buffer = self.buffer[offset:offset + length], self.buffer[offset + length:]
            opcode = first & 0x0F
            if opcode == 0x9:
                self.send(payload, opcode=0xA)
            elif opcode == 0x8:
                self._fail(f"closed by the server: {payload[:40]!r}")
            elif opcode == 0x1:
                if not self.ready.done():
                    self.ready.set_result(payload)
                elif self.on_text is not None:
                    self.on_text(payload)

    def _fail(self, why: str) -> None:
        self.closed = True
        for future in (self.switched, self.ready):
            if not future.done():
                future.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for future in (self.switched, self.ready):
            if not future.done():
                future.set_exception(ConnectionError(f"connection lost: {exc}"))

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self.transport.write(head + mask + masked)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_ws(port: int, path: str, source: str, first: bytes,
                  on_text: Callable[[bytes], None] | None = None) -> tuple[WS, bytes]:
    """Connects from ``source``, upgrades, sends ``first`` and waits for the first text frame back."""
    loop = asyncio.get_running_loop()
    _, ws = await loop.create_connection(lambda: WS(on_text), "127.0.0.1", port, local_addr=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    assert ws.transport is not None
    ws.transport.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                        f"Origin: http://bench.example\r\n\r\n").encode())
    await asyncio.wait_for(ws.switched, 30)  # frames only after the 101
    ws.send(first)
    reply = await asyncio.wait_for(ws.ready, 30)
    return ws, reply


def source_address(block: int, n: int, per_address: int) -> str:
    k = n // per_address
    return f"127.{block}.{k // 250}.{k % 250 + 1}"


# --------------------------------------------------------------------------- measurements


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Target:
    """One server under test: how its clients connect and talk."""

    def __init__(self, name: str, port: int, pid: int) -> None:
        self.name = name
        self.port = port
        self.pid = pid

    @property
    def ours(self) -> bool:
        return self.name == "ours"

    def path(self) -> str:
        return f"/chat/ws/visitor?key={ACCOUNT_KEY}" if self.ours else "/echo"

    def first_frame(self, n: int) -> bytes:
        if self.ours:
            return b'{"type":"visitor.connect","ref":"c","pageUrl":"http://bench.example/p%d"}' % n
        return b'{"type":"hello","n":%d}' % n

    def ping(self) -> bytes:
        return b'{"type":"ping"}'


async def open_many(target: Target, count: int, block: int, per_address: int, concurrency: int = 100,
                    on_text: Callable[[bytes], None] | None = None) -> list[WS]:
    sockets: list[WS] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with semaphore:
            ws, _ = await open_ws(target.port, target.path(), source_address(block, n, per_address),
                                  target.first_frame(n), on_text)
            sockets.append(ws)

    await asyncio.gather(*(one(n) for n in range(count)))
    return sockets


async def keep_alive(sockets: list[WS], target: Target) -> None:
    while True:
        await asyncio.sleep(20)
        for ws in sockets:
            ws.send(target.ping())


async def idle_rss(target: Target, count: int) -> dict[str, float]:
    # warm-up: the code paths and caches of a connection, then the base line
    warm = await open_many(target, 200, 3, PER_ADDRESS)
    await asyncio.sleep(0.5)
    for ws in warm:
        ws.close()
    await asyncio.sleep(1.5)
    before = rss_kb(target.pid)
    started = time.monotonic()
    sockets = await open_many(target, count, 1, PER_ADDRESS)
    opened = time.monotonic() - started
    pinger = asyncio.ensure_future(keep_alive(sockets, target))
    await asyncio.sleep(3)
    after = rss_kb(target.pid)
    alive = sum(1 for ws in sockets if not ws.closed)
    pinger.cancel()
    for ws in sockets:
        ws.close()
    await asyncio.sleep(2)
    return {"connections": alive, "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
            "kb_per_connection": (after - before) / count, "open_seconds": opened}


async def round_trip(target: Target, rate: int, duration: float, senders: int) -> dict[str, float]:
    sent_at: dict[bytes, float] = {}
    trips: list[float] = []
    measuring = False

    def received(payload: bytes) -> None:
        start = payload.find(b'"clientId":"')
        if start < 0:
            return
        start += len(b'"clientId":"')
        client_id = payload[start:payload.find(b'"', start)]
        at = sent_at.pop(client_id, None)
        if at is not None and measuring:
            trips.append(time.perf_counter() - at)

    if target.ours:
        from opensupp.chat.protocol import agent_token

        token = agent_token(SECRET, ACCOUNT_ID, AGENT_ID).encode()
        agent, _ = await open_ws(target.port, "/chat/ws/agent", "127.4.0.1",
                                 b'{"type":"agent.connect","ref":"a","token":"%s"}' % token, received)
        sockets = await open_many(target, senders, 2, SENDERS_PER_ADDRESS)
        extra = [agent]
    else:
        sockets = await open_many(target, senders, 2, SENDERS_PER_ADDRESS, on_text=received)
        extra = []
    pinger = asyncio.ensure_future(keep_alive(sockets + extra, target))
    counter = itertools.count()

    async def send_for(seconds: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in itertools.count():
            at = start + k / rate
            if at - start >= seconds:
                return
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            client_id = b"m%d" % next(counter)
            sent_at[client_id] = time.perf_counter()
            sockets[k % senders].send(b'{"type":"chat.message","clientId":"%s","text":"hello from the bench"}'
                                      % client_id)

    await send_for(2.0)  # warm-up
    await asyncio.sleep(0.5)
    sent_at.clear()
    measuring = True
    await send_for(duration)
    await asyncio.sleep(1.0)
    lost = len(sent_at)
    pinger.cancel()
    for ws in sockets + extra:
        ws.close()
    await asyncio.sleep(1)
    cuts = statistics.quantiles(trips, n=100) if len(trips) >= 100 else [float("nan")] * 99
    return {"messages": len(trips), "unanswered": lost, "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(kind: str, port: int, temp: Path, connections: int, core: str = "database") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSUPP_")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(SRC_DIR), str(BENCH_DIR)]),
        "OPENSUPP_MAX_CONNECTIONS": str(connections + 2000),
        "OPENSUPP_SECRET_KEY": SECRET,
        "OPENSUPP_DATA_DIR": str(temp),
        "OPENSUPP_DATABASE_URL": f"sqlite:///{temp / f'{kind}.db'}",
        "OPENSUPP_LOG_LEVEL": "warning",
    })
    if kind == "echo":
        command = [sys.executable, str(BENCH_DIR / "ws_echo_app.py"), "--port", str(port)]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-ours", "--port", str(port), "--core", core]
    log = open(temp / f"{kind}.log", "wb")  # noqa: SIM115  (closed with the process)
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {kind} server exited: {(temp / f'{kind}.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return process
        time.sleep(0.1)
    raise RuntimeError(f"the {kind} server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None and os.environ.get("BENCH_PROFILE"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGUSR1)
        time.sleep(2)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def raise_fd_limit(needed: int) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, needed)) if hard != resource.RLIM_INFINITY else max(soft, needed)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    note = f"open files: {soft} (hard limit {hard})"
    if soft < needed:
        note += f": below the {needed} this run needs; connections past it will fail (raise `ulimit -Hn`)"
    return note


async def measure(args: argparse.Namespace, temp: Path) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for kind in ("echo", "ours"):
        port = free_port()
        process = start(kind, port, temp, args.connections, args.core)
        try:
            target = Target(kind, port, process.pid)
            print(f"[{kind}] {args.connections} idle connections ...", flush=True)
            idle = await idle_rss(target, args.connections)
            print(f"[{kind}] round trip at {args.rate}/s over {args.senders} connections, {args.duration:g} s ...",
                  flush=True)
            trip = await round_trip(target, args.rate, args.duration, args.senders)
            results[kind] = idle | trip
        finally:
            stop(process)
    return results


def report(results: dict[str, dict[str, float]], fd_note: str, args: argparse.Namespace) -> None:
    echo, ours = results["echo"], results["ours"]
    print()
    print(f"chat bench: {args.connections} idle connections, round trip at {args.rate} messages/s "
          f"over {args.senders} connections for {args.duration:g} s; ours stores "
          f"{'through the database (SQLite)' if args.core == 'database' else 'nothing (--core none)'}; {fd_note}")
    print(f"{'':34}{'echo':>12}{'ours':>12}{'ratio':>9}  target")
    rows = [
        ("idle connections held", "connections", "{:.0f}", None),
        ("RSS before (MB)", "rss_before_mb", "{:.1f}", None),
        ("RSS with the connections (MB)", "rss_after_mb", "{:.1f}", None),
        ("RSS per connection (KB)", "kb_per_connection", "{:.1f}", 1.5),
        ("seconds to open them", "open_seconds", "{:.1f}", None),
        ("round trips measured", "messages", "{:.0f}", None),
        ("unanswered", "unanswered", "{:.0f}", None),
        ("round trip p50 (ms)", "p50_ms", "{:.2f}", None),
        ("round trip p99 (ms)", "p99_ms", "{:.2f}", 2.0),
    ]
    for label, key, fmt, limit in rows:
        a, b = echo[key], ours[key]
        ratio = b / a if a else float("nan")
        verdict = ""
        if limit is not None:
            verdict = f"<= {limit:g}x: " + ("met" if ratio <= limit else "MISSED")
        ratio_text = f"{ratio:.2f}x" if key in ("kb_per_connection", "p50_ms", "p99_ms") else ""
        print(f"{label:34}{fmt.format(a):>12}{fmt.format(b):>12}{ratio_text:>9}  {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000, help="idle connections held (default 10000)")
    parser.add_argument("--rate", type=int, default=500, help="messages per second in the round-trip run")
    parser.add_argument("--senders", type=int, default=500, help="connections the messages are spread over")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the measured round-trip run")
    parser.add_argument("--core", choices=("database", "none"), default="database",
                        help="ours stores through the database (default), or nothing (the transport alone)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (server logs)")
    parser.add_argument("--serve-ours", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_ours:
        sys.path[:0] = [str(SRC_DIR), str(BENCH_DIR)]
        serve_ours("127.0.0.1", args.port, args.core)
        return 0
    sys.path.insert(0, str(SRC_DIR))
    fd_note = raise_fd_limit(args.connections + args.senders + 1000)
    temp = Path(tempfile.mkdtemp(prefix="opensupp-chat-bench-"))
    try:
        results = asyncio.run(measure(args, temp))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep_temp:
            print(f"temp dir kept: {temp}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(temp, ignore_errors=True)
    report(results, fd_note, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
