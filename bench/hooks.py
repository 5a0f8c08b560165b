"""Benchmark the hooks' outbox: how fast the worker delivers, against a plain HTTP client doing
only the POSTs, and how long an event waits between its commit and its arrival.

    python bench/hooks.py [--backend sqlite|postgres|both] [--events 2000] [--rounds 3]

A receiver (``bench/raw_app.py``-like, under uvicorn with uvloop and httptools, in a child
process on a free port) answers every POST 200 and notes when each ``webhook-id`` arrived.

1. **Throughput.** Per round, alternately:
   - *baseline*: a plain ``httpx.AsyncClient`` POSTs ``--events`` bodies of the same size to
     the receiver, ``BATCH`` at a time (the worker's concurrency) over 10 connections and over
     20 (the worker's pool), and nothing else: the faster of the two;
   - *ours*: ``--events`` deliveries are enqueued (in transactions of 500, not timed), then
     the real ``opensupp.outbox.worker.Worker``, running its loop as ``opensupp serve`` does,
     claims, signs, sends and records them until none is pending (timed): deliveries per
     second, and its ratio to the baseline (the issue's target: at least 50 %).
2. **Commit to delivery.** The worker runs as it does in ``opensupp serve`` (its ``loop``, in
   this process); events are enqueued one per transaction at ``--rate`` per second for
   ``--seconds``, and each one's delay from its commit to its arrival at the receiver is
   taken on the machine's one clock: p50, p99, max. Then the same with the worker in
   another process (``opensupp worker``), which finds committed events by polling.

A measurement, not a test: the exit code is 0 whatever the figures say. Everything it starts
is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from chat import free_port, stop  # bench/chat.py: the same child-process handling
from raw_app import lifespan  # bench/raw_app.py

BENCH_DIR = Path(__file__).resolve().parent
SRC_DIR = BENCH_DIR.parent / "src"
sys.path.insert(0, str(SRC_DIR))
POSTGRES = os.environ.get("OPENSUPP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PAYLOAD = {"type": "event_callback", "event": "conversation.closed", "timestamp": 0, "account_id": 1,
           "data": {"conversation": {"id": "1", "status": "closed", "text": "x" * 600}}}


# --------------------------------------------------------------------------- the receiver


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST: 200 after reading the body, its webhook-id's arrival noted. GET: the arrivals so far
    ({webhook-id: unix time}), which are then forgotten."""
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        while True:
            message = await receive()
            if not message.get("more_body", False):
                break
        arrived = time.time()
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                ARRIVALS[value.decode()] = arrived
        body = b"ok"
    else:
        body = json.dumps(ARRIVALS).encode()
        ARRIVALS.clear()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


ARRIVALS: dict[str, float] = {}


def start_receiver(port: int, temp: Path) -> subprocess.Popen[bytes]:
    log = open(temp / "receiver.log", "wb")  # noqa: SIM115  (closed with the process)
    process = subprocess.Popen([sys.executable, __file__, "--receiver", str(port)], stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5).read()
            return process
        time.sleep(0.1)
    raise RuntimeError("the receiver did not start")


def run_receiver(port: int) -> None:
    import uvicorn

    uvicorn.run(receiver_app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_config=None,
                log_level="warning", access_log=False, server_header=False, date_header=False)


def arrivals(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return dict(json.loads(response.read()))


# --------------------------------------------------------------------------- the database


async def open_db(backend: str, temp: Path) -> tuple[Any, str]:
    from opensupp.db import open_database
    from opensupp.migrate import migrate

    if backend == "sqlite":
        url = f"sqlite:///{temp / 'hooks.db'}"
    else:
        import asyncpg

        name = f"bench_hooks_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(POSTGRES)
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        url = POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    await asyncio.to_thread(migrate, url)
    db = open_database(url, pool_size=10)
    await db.open()
    return db, url


async def drop_db(backend: str, url: str) -> None:
    if backend == "postgres":
        import asyncpg

        admin = await asyncpg.connect(POSTGRES)
        await admin.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
        await admin.close()


async def make_hook(db: Any, port: int) -> tuple[int, int]:
    import orjson

    from opensupp.accounts import service as accounts
    from opensupp.hooks import service as hooks
    from opensupp.partners import service as partners

    async with db.transaction() as session:
        partner_id = await partners.create_partner(session, name="bench-hooks")
        account = await accounts.create_account(session, partner_id=partner_id, title="Bench", lang="en")
        hook = await hooks.create_hook(session, partner_id=partner_id, account_id=account.id, name="webhook",
                                       config={"url": "https://example.com/h"})
        # the API refuses a loopback URL, which is where the receiver is: set in SQL, allowed below
        config = {**hook.config, "url": f"http://127.0.0.1:{port}/in"}
        await session.execute("UPDATE hooks SET config = $1 WHERE id = $2", orjson.dumps(config).decode(), hook.id)
    return account.id, hook.id


async def enqueue_many(db: Any, account_id: int, hook_id: int, count: int) -> None:
    from opensupp.outbox import service

    for start in range(0, count, 500):
        async with db.transaction() as session:
            for _ in range(min(500, count - start)):
                await service.enqueue(session, account_id=account_id, hook_id=hook_id, event="conversation.closed",
                                      payload=PAYLOAD)


# --------------------------------------------------------------------------- the measurements


async def baseline(port: int, count: int) -> float:
    """Requests per second of a plain httpx client POSTing ``count`` bodies, BATCH at a time:
    the better of a pool of 10 connections and of the worker's 20 (fewer are faster here), so
    the baseline is the best plain loop measured."""
    import httpx
    import orjson

    from opensupp.outbox.sending import CONNECTIONS
    from opensupp.outbox.worker import BATCH

    body = orjson.dumps(PAYLOAD)
    url = f"http://127.0.0.1:{port}/in"
    rates = []
    for connections in sorted({10, CONNECTIONS}):
        async with httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=connections)) as client:
            started = time.perf_counter()
            for start in range(0, count, BATCH):
                await asyncio.gather(*(client.post(url, content=body, headers={"content-type": "application/json"})
                                       for _ in range(min(BATCH, count - start))))
            rates.append(count / (time.perf_counter() - started))
    return max(rates)


async def ours(db: Any, port: int, account_id: int, hook_id: int, count: int) -> float:
    """Deliveries per second of the real worker as ``opensupp serve`` runs it (its ``loop``),
    from the first due to all recorded delivered (a count read every 20 ms)."""
    from opensupp.outbox import sending
    from opensupp.outbox.worker import Worker

    await enqueue_many(db, account_id, hook_id, count)
    worker = Worker(db, networks=sending.parse_networks("127.0.0.1/32"))
    started = time.perf_counter()
    task = asyncio.create_task(worker.loop())
    try:
        while True:
            async with db.read() as session:
                left = await session.fetchval("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'")
            if not left:
                break
            if task.done():
                raise RuntimeError(f"the worker stopped: {task.exception()!r}")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    arrivals(port)  # forget them
    return count / elapsed


async def paced(db: Any, account_id: int, hook_id: int, rate: int, seconds: float) -> dict[str, float]:
    """Enqueue one event per transaction at ``rate`` per second; answer each webhook-id's commit time."""
    from opensupp.outbox import service

    committed: dict[str, float] = {}
    started = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        async with db.transaction() as session:
            delivery = await service.enqueue(session, account_id=account_id, hook_id=hook_id,
                                             event="conversation.closed", payload=PAYLOAD)
        committed[delivery.webhook_id] = time.time()
    return committed


async def delays(port: int, committed: dict[str, float]) -> list[float]:
    deadline = time.monotonic() + 30
    got: dict[str, float] = {}
    while time.monotonic() < deadline:
        got.update(await asyncio.to_thread(arrivals, port))
        if set(committed) <= set(got):
            break
        await asyncio.sleep(0.2)
    missing = set(committed) - set(got)
    if missing:
        raise RuntimeError(f"{len(missing)} events never arrived")
    return sorted((got[w] - committed[w]) * 1000 for w in committed)


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p99": values[min(len(values) - 1, int(len(values) * 0.99))],
            "max": values[-1]}


async def latency_in_process(db: Any, port: int, account_id: int, hook_id: int, rate: int,
                             seconds: float) -> dict[str, float]:
    from opensupp.outbox import sending
    from opensupp.outbox.worker import Worker

    task = asyncio.create_task(Worker(db, networks=sending.parse_networks("127.0.0.1/32")).loop())
    try:
        await asyncio.sleep(0.5)
        committed = await paced(db, account_id, hook_id, rate, seconds)
        return summary(await delays(port, committed))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def latency_other_process(db: Any, url: str, port: int, account_id: int, hook_id: int, rate: int,
                                seconds: float, temp: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSUPP_")}
    env.update({"PYTHONPATH": str(SRC_DIR), "OPENSUPP_DATABASE_URL": url, "OPENSUPP_LOG_LEVEL": "warning",
                "OPENSUPP_HOOK_ALLOW_NETWORKS": "127.0.0.1/32", "OPENSUPP_DATA_DIR": str(temp)})
    log = open(temp / "worker.log", "wb")  # noqa: SIM115  (closed with the process)
    process = subprocess.Popen([sys.executable, "-m", "opensupp", "worker"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await asyncio.sleep(3)  # it migrates (nothing to do) and starts polling
        if process.poll() is not None:
            raise RuntimeError(f"opensupp worker exited: {(temp / 'worker.log').read_text()[-2000:]}")
        committed = await paced(db, account_id, hook_id, rate, seconds)
        return summary(await delays(port, committed))
    finally:
        stop(process)


async def measure(backend: str, args: argparse.Namespace, temp: Path, port: int) -> dict[str, Any]:
    db, url = await open_db(backend, temp)
    try:
        account_id, hook_id = await make_hook(db, port)
        await baseline(port, 200)  # warm both paths up
        await ours(db, port, account_id, hook_id, 200)
        base, mine = [], []
        for _ in range(args.rounds):
            base.append(await baseline(port, args.events))
            mine.append(await ours(db, port, account_id, hook_id, args.events))
        arrivals(port)
        near = await latency_in_process(db, port, account_id, hook_id, args.rate, args.seconds)
        far = await latency_other_process(db, url, port, account_id, hook_id, args.rate, args.seconds, temp)
        return {"baseline": statistics.median(base), "ours": statistics.median(mine), "near": near, "far": far}
    finally:
        await db.close()
        await drop_db(backend, url)


def report(backend: str, r: dict[str, Any], args: argparse.Namespace) -> None:
    ratio = r["ours"] / r["baseline"]
    print(f"\n## {backend}: {args.events} events, median of {args.rounds} rounds")
    print("| | per second | ratio |")
    print("|---|---|---|")
    print(f"| plain httpx POST loop (baseline) | {r['baseline']:,.0f} | 1.00x |")
    print(f"| outbox worker: claim, sign, send, record | {r['ours']:,.0f} | {ratio:.2f}x"
          f" ({'meets' if ratio >= 0.5 else 'misses'} the 50% target) |")
    print(f"\nCommit to arrival, {args.rate} events/s for {args.seconds:g} s, one transaction each (ms):")
    print("| worker | p50 | p99 | max |")
    print("|---|---|---|---|")
    for name, key in (("in the committing process (serve)", "near"), ("`opensupp worker` process", "far")):
        d = r[key]
        print(f"| {name} | {d['p50']:.1f} | {d['p99']:.1f} | {d['max']:.1f} |")


async def main_async(args: argparse.Namespace) -> None:
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="bench-hooks-") as name:
        temp = Path(name)
        port = free_port()
        receiver = start_receiver(port, temp)
        try:
            for backend in backends:
                report(backend, await measure(backend, args, temp, port), args)
        finally:
            stop(receiver)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--events", type=int, default=2000, help="events per throughput round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=50, help="events per second in the latency runs")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each latency run")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)  # internal: be the receiver on this port
    args = parser.parse_args(argv)
    if args.receiver:
        run_receiver(args.receiver)
        return 0
    os.environ.setdefault("OPENSUPP_LOG_LEVEL", "warning")
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
