"""Benchmark the XMPP side: how long an agent's XMPP login takes against the argon2id check at its
heart, and how long a visitor's message takes to reach an XMPP agent against the same message
reaching a dashboard agent, in one run.

    python bench/xmpp.py [--logins 30] [--messages 150] [--rate 4]

It starts Debian's Prosody with the config `opensupp xmpp setup` writes (tests/xmpp_kit.py: as
the prosody user when run as root, free ports, a self-signed certificate) and `opensupp serve`
(SQLite, its bridge connected as the component) as processes, and makes an account with one
agent through the partner API.

1. **Login.** ``--logins`` times, one after another: a slixmpp client connects, does STARTTLS,
   authenticates with PLAIN (Prosody asks opensupp's endpoint, which verifies the argon2id hash
   and counts the attempt in the database) and binds: time to the session's start. The
   baseline: the same number of bare ``argon2.PasswordHasher.verify`` calls on the agent's hash
   parameters (opensupp's own hasher), in this process. p50, p99 and their ratio.
2. **Relay.** The agent is logged in over XMPP and connected to the dashboard's socket (an
   agent token) at once. Visitors (WebSockets, several, as the chat's per-visitor limit is one
   message a second) send ``--messages`` messages at ``--rate`` per second; each one's time from
   the visitor's send to its arrival at the XMPP client and at the dashboard socket is taken on
   this process's one clock: p50, p99, max, and the XMPP/dashboard ratio of the medians.

A measurement, not a test: the exit code is 0 whatever the figures say. Everything it starts
is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import httpx  # noqa: E402
import websockets  # noqa: E402
from chat import free_port, stop  # noqa: E402  (bench/chat.py: the same child-process handling)
from slixmpp import ClientXMPP  # noqa: E402
from xmpp_kit import DOMAIN, Prosody, prosody_missing  # noqa: E402  (tests/xmpp_kit.py)

from opensupp.chat import protocol  # noqa: E402
from opensupp.config import Settings  # noqa: E402
from opensupp.passwords import HASHER  # noqa: E402

PASSWORD = "Bench-agent-pass-1"


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "max": ordered[-1], "n": len(ordered)}


def client(prosody: Prosody, user_id: int, resource: str) -> tuple[ClientXMPP, asyncio.Event]:
    xmpp = ClientXMPP(f"uid{user_id}@{DOMAIN}/{resource}", PASSWORD)
    xmpp.enable_direct_tls = False
    xmpp.ssl_context = ssl.create_default_context(cafile=str(prosody.certificate))
    started = asyncio.Event()
    xmpp.add_event_handler("session_start", lambda _: started.set())
    xmpp.add_event_handler("failed_all_auth", lambda _: print("bench/xmpp.py: the login was refused", file=sys.stderr))
    return xmpp, started


async def measure_logins(prosody: Prosody, user_id: int, count: int, password_hash: str) -> dict[str, Any]:
    logins = []
    clients = []  # kept until the loop ends: slixmpp's tasks of a client collected early complain
    for n in range(count):
        xmpp, started = client(prosody, user_id, f"login{n}")
        clients.append(xmpp)
        at = time.perf_counter()
        xmpp.connect("127.0.0.1", prosody.c2s_port)
        await asyncio.wait_for(started.wait(), 20)
        logins.append(time.perf_counter() - at)
        await xmpp.disconnect(wait=1)
    verifies = []
    for _ in range(count):
        at = time.perf_counter()
        HASHER.verify(password_hash, PASSWORD)
        verifies.append(time.perf_counter() - at)
    return {"login": percentiles(logins), "argon2": percentiles(verifies)}


async def measure_relay(prosody: Prosody, url: str, key: str, secret: str, account_id: int, user_id: int,
                        messages: int, rate: float) -> dict[str, Any]:
    xmpp, started = client(prosody, user_id, "relay")
    arrived_xmpp: dict[str, float] = {}
    arrived_dashboard: dict[str, float] = {}
    xmpp.add_event_handler("message", lambda m: arrived_xmpp.setdefault(m["body"], time.perf_counter()))

    async def session(_: Any) -> None:
        xmpp.send_presence()

    xmpp.add_event_handler("session_start", session)
    xmpp.connect("127.0.0.1", prosody.c2s_port)
    await asyncio.wait_for(started.wait(), 20)
    ws_url = url.replace("http", "ws")
    async with contextlib.AsyncExitStack() as stack:
        dashboard = await stack.enter_async_context(websockets.connect(ws_url + "/chat/ws/agent"))
        await dashboard.send(json.dumps({"type": "agent.connect", "ref": "a",
                                         "token": protocol.agent_token(secret, account_id, user_id)}))

        async def read_dashboard() -> None:
            async for raw in dashboard:
                frame = json.loads(raw)
                if frame.get("type") == "chat.message_received" and frame["message"]["kind"] == "visitor":
                    arrived_dashboard.setdefault(frame["message"]["text"], time.perf_counter())

        reader = asyncio.get_running_loop().create_task(read_dashboard())
        visitors = []
        for n in range(max(2, int(rate * 2) + 1)):  # each visitor writes at most every other second
            ws = await stack.enter_async_context(websockets.connect(
                ws_url + f"/chat/ws/visitor?key={key}", origin="http://www.shop.test"))
            await ws.send(json.dumps({"type": "visitor.connect", "ref": "c", "name": f"Visitor {n}"}))
            await ws.recv()
            stack.push_async_callback(_drain_cancel, asyncio.get_running_loop().create_task(_drain(ws)))
            visitors.append(ws)
        await asyncio.sleep(1)  # the roll call and the first roster additions settle
        sent: dict[str, float] = {}
        # one warm-up message per visitor: each visitor's first one adds it to the agent's roster
        for n, ws in enumerate(visitors):
            await ws.send(json.dumps({"type": "chat.message", "clientId": f"w{n}", "text": f"warm-up {n}"}))
        await asyncio.sleep(2)
        start = time.perf_counter()
        for n in range(messages):
            text = f"message {n} " + "x" * 40
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            sent[text] = time.perf_counter()
            await visitors[n % len(visitors)].send(json.dumps({"type": "chat.message", "clientId": f"m{n}",
                                                               "text": text}))
        deadline = time.perf_counter() + 15
        while (len(arrived_xmpp) < messages + len(visitors) or len(arrived_dashboard) < messages + len(visitors)) \
                and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        reader.cancel()
    await xmpp.disconnect(wait=1)
    to_xmpp = [arrived_xmpp[t] - at for t, at in sent.items() if t in arrived_xmpp]
    to_dashboard = [arrived_dashboard[t] - at for t, at in sent.items() if t in arrived_dashboard]
    return {"xmpp": percentiles(to_xmpp), "dashboard": percentiles(to_dashboard),
            "lost": {"xmpp": messages - len(to_xmpp), "dashboard": messages - len(to_dashboard)}}


async def settled(coroutine: Any) -> Any:
    """``coroutine``'s result, then slixmpp's leftover tasks ended on this loop (not destroyed with it)."""
    try:
        return await coroutine
    finally:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def _drain_cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logins", type=int, default=30)
    parser.add_argument("--messages", type=int, default=150)
    parser.add_argument("--rate", type=float, default=4.0, help="visitor messages per second (all visitors)")
    args = parser.parse_args(argv)
    missing = prosody_missing()
    if missing:
        print(f"bench/xmpp.py: {missing}", file=sys.stderr)
        return 1
    temp = Path(tempfile.mkdtemp(prefix="opensupp-bench-xmpp-"))
    port = free_port()
    data_dir = temp / "opensupp"
    prosody = Prosody(Settings(data_dir=data_dir), f"http://127.0.0.1:{port}")
    server: subprocess.Popen[bytes] | None = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSUPP_")}
    env.update({"OPENSUPP_DATA_DIR": str(data_dir), "OPENSUPP_DATABASE_URL": f"sqlite:///{temp}/opensupp.db",
                "OPENSUPP_ACCESS_LOG": "0", "OPENSUPP_LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT / "src")})
    try:
        prosody.start()
        made = subprocess.run([sys.executable, "-m", "opensupp", "keys", "create", "--name", "bench"], env=env,
                              capture_output=True, text=True, check=True)
        api_key = made.stdout.strip().splitlines()[-1]
        server = subprocess.Popen([sys.executable, "-m", "opensupp", "serve", "--port", str(port)], env=env,
                                  stdout=(temp / "serve.log").open("wb"), stderr=subprocess.STDOUT,
                                  start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, headers={"apiKey": api_key}, timeout=20) as api:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if api.get("/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("opensupp did not start: " + (temp / "serve.log").read_text()[-2000:])
                time.sleep(0.1)
            account = api.post("/accounts/create", json={"title": "Bench", "lang": "en"}).json()
            user = api.post(f"/accounts/{account['id']}/users/create", json={
                "email": "agent@bench.example", "password": PASSWORD, "fullname": "Bench Agent",
                "nickname": "Bench"}).json()
        account_id, user_id = int(account["id"]), int(user["id"])
        secret = (data_dir / "secret_key").read_text().strip()
        password_hash = HASHER.hash(PASSWORD)
        logins = asyncio.run(settled(measure_logins(prosody, user_id, args.logins, password_hash)))
        relay = asyncio.run(settled(measure_relay(prosody, url, account["accountKey"], secret, account_id, user_id,
                                                  args.messages, args.rate)))
    finally:
        if server is not None:
            stop(server)
        prosody.close()
        shutil.rmtree(temp, ignore_errors=True)

    ms = 1000
    login, argon = logins["login"], logins["argon2"]
    print(f"XMPP login ({login['n']} in a row: TCP, STARTTLS, SASL PLAIN checked by opensupp, bind) "
          f"against a bare argon2id verify (opensupp's parameters):")
    print(f"  login   p50 {login['p50'] * ms:7.1f} ms   p99 {login['p99'] * ms:7.1f} ms")
    print(f"  argon2  p50 {argon['p50'] * ms:7.1f} ms   p99 {argon['p99'] * ms:7.1f} ms")
    print(f"  ratio   p50 {login['p50'] / argon['p50']:7.2f}x  p99 {login['p99'] / argon['p99']:7.2f}x")
    x, d = relay["xmpp"], relay["dashboard"]
    print(f"Relay visitor -> agent ({x['n']} messages at {args.rate:g}/s), the same messages to both:")
    for name, figures in (("XMPP client", x), ("dashboard socket", d)):
        print(f"  {name:16}  p50 {figures['p50'] * ms:6.2f} ms   p99 {figures['p99'] * ms:6.2f} ms   "
              f"max {figures['max'] * ms:6.2f} ms")
    print(f"  ratio XMPP/dashboard: p50 {x['p50'] / d['p50']:.2f}x  p99 {x['p99'] / d['p99']:.2f}x; "
          f"not arrived: XMPP {relay['lost']['xmpp']}, dashboard {relay['lost']['dashboard']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
