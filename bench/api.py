"""Benchmark the partner API against its baselines; see bench/README.md.

    python bench/api.py [--backend sqlite|postgres|both] [--duration SECONDS]
                        [--connections 64] [--rounds N]

Starts a raw ASGI app (bench/raw_app.py) and the real server (``python -m opensupp serve``)
on fresh databases, drives them with wrk (and PostgreSQL with pgbench), alternating each
scenario with its baseline ``--rounds`` times, and prints the medians, the ratios and the
floors. It is a measurement, not a test: the exit code is 0 whatever the floors say.
Everything it starts or creates (processes, temp files, PostgreSQL databases) is removed
at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import datetime
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
SRC_DIR = OWN_SRC_DIR = BENCH_DIR.parent / "src"
#: the python that runs the real server and ``keys create`` (``--server-tree`` changes both)
SERVER_PYTHON = sys.executable
PG_ADMIN_URL = os.environ.get("OPENSUPP_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

SMALL, LARGE = 10**3, 10**6  # accounts in the table for the two list measurements
PAGE = 100
DEEP_OFFSET = 150  # the deep page starts this many rows before the end of the table
CREATE_BODY = '{"title":"Account name","lang":"en"}'
# the guide's trigger (docs: "1st visit greeting"), created into an account made through the API
TRIGGER_BODY = json.dumps({
    "active": True, "name": "1st visit greeting",
    "description": "Greeting message to a visitor who visits your website for the 1st time",
    "event": "onload",
    "conditions": [{"name": "delay_site", "value": 60}, {"name": "is_visitor_send_message", "value": False},
                   {"name": "is_visitor_served", "value": False}, {"name": "number_of_visits", "value": 1}],
    "actions": [{"name": "message", "agent_nick": "Support",
                 "message": "Hello, we have noticed you are here for the 1st time. If you have any questions, "
                            "do not hesitate to get in touch."}],
})
EVAL_TRIGGERS = 50  # triggers of 4 conditions each in the account the evaluate scenario asks about


def eval_trigger(i: int) -> dict[str, Any]:
    """The guide's trigger, varied: 50 distinct triggers of 4 conditions (waits of 10 to 100 s,
    first visits and returning ones, half of them for visitors of a page)."""
    conditions = [{"name": "delay_site", "value": 10 + (i % 10) * 10},
                  {"name": "is_visitor_served", "value": False},
                  {"name": "number_of_visits", "value": 1 + i % 3, "cmp": "gte" if i % 2 else "eq"}]
    if i % 2:
        conditions.append({"name": "visitor_page_url", "value": f"/p/{i % 7}", "cmp": "contains"})
    else:
        conditions.append({"name": "is_visitor_send_message", "value": False})
    return {"name": f"greeting {i}", "event": "onload", "conditions": conditions,
            "actions": [{"name": "message", "agent_nick": "Support", "message": f"Hello ({i})"}]}


# a returning visitor 25 s on a product page: some triggers fire later, some never
EVAL_BODY = json.dumps({"event": "onload", "visitor": {
    "seconds_on_site": 25, "seconds_on_page": 5, "number_of_visits": 2, "number_of_pages": 3,
    "visitor_page_url": "https://shop.example.com/p/3?ref=mail", "visitor_country_code": "CZ",
    "visitor_language": "cs"}})
UNIQUE = "{unique}"  # replaced per request by the wrk script (see LUA_UNIQUE_BODY)
USER_BODY = json.dumps({"email": f"{UNIQUE}@example.com", "fullname": "John Doe", "password": "john.doe.secret"})
CPUS = os.cpu_count() or 1  # the server's hash pool has this many threads (opensupp.passwords)

# names of the scenarios (and of the baselines they are compared with)
RAW_GET, RAW_POST, PGBENCH = "raw ASGI GET", "raw ASGI POST", "pgbench INSERT"
GET, CREATE, CREATE_IDEM = "account get", "account create", "account create + Idempotency-Key"
LIST_SMALL, LIST_LARGE, LIST_DEEP = "list page 1 @ 10^3 rows", "list page 1 @ 10^6 rows", "list deep page @ 10^6 rows"
TRIGGER_GET, TRIGGER_CREATE = "trigger get", "trigger create"
EVALUATE = f"triggers evaluate ({EVAL_TRIGGERS} x 4 conditions)"
HASH, USER_CREATE = f"argon2id hash, {CPUS} threads", "user create"
# the floors (see bench/README.md)
SQLITE_GET_FLOOR = 0.25  # account get >= 25% of raw ASGI GET
SQLITE_CREATE_FLOOR = 0.15  # account create >= 15% of raw ASGI POST
POSTGRES_CREATE_FLOOR = 0.25  # account create >= 25% of pgbench's INSERT rate
USER_FLOOR = 0.70  # user create >= 70% of the bare argon2id hash rate on all cores
EVALUATE_FLOOR = 0.50  # triggers evaluate (50 triggers x 4 conditions) >= 50% of account get
LIST_CEILING = 1.3  # a list page at 10^6 rows costs at most 1.3x the page at 10^3
CLIENT_BOUND = 0.9  # a load generator using this share of its CPU may be what limits the rate
BUSY_MACHINE = 0.8  # the hash baseline using less than this share of all CPUs ran on a busy machine


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """One run of wrk or pgbench."""

    rate: float  # requests (transactions) per second
    p99_ms: float
    bad_status: int = 0  # wrk: responses with status >= 400; pgbench: failed transactions
    socket_errors: int = 0  # wrk: connect, read, write errors and timeouts
    server_cpu: float | None = None  # share of one CPU the server process used during the run
    client_cpu: float | None = None  # the same for wrk or pgbench

    @property
    def errors(self) -> int:
        return self.bad_status + self.socket_errors


@dataclass(frozen=True)
class Compare:
    """Compare a scenario's median rate with a baseline's.

    ``floor``: the rate must be at least this fraction of the baseline's.
    ``ceiling``: the cost (1/rate) may be at most this multiple of the baseline's.
    Neither: shown for information (and in the summary too with ``summary``).
    """

    baseline: str
    floor: float | None = None
    ceiling: float | None = None
    summary: bool = False


@dataclass
class Scenario:
    name: str
    measure: Callable[[int], Result]  # one run of that many seconds
    check: Callable[[], str | None] | None = None  # one request by hand: None, or what is wrong
    warmup: bool = True  # False: no unmeasured run first (a fresh process each run warms itself)
    all_cpus: bool = False  # meant to keep every CPU busy: a share well below CPUS means a busy machine
    compares: list[Compare] = field(default_factory=list)
    runs: list[Result] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def spread(self) -> float:
        rates = [r.rate for r in self.runs]
        return (max(rates) - min(rates)) / 2 / self.rate if self.rate else 0.0

    @property
    def server_cpu(self) -> float | None:
        shares = [r.server_cpu for r in self.runs if r.server_cpu is not None]
        return statistics.median(shares) if shares else None

    @property
    def client_cpu(self) -> float | None:
        shares = [r.client_cpu for r in self.runs if r.client_cpu is not None]
        return statistics.median(shares) if shares else None

    @property
    def bad_status(self) -> int:
        return sum(r.bad_status for r in self.runs)

    @property
    def socket_errors(self) -> int:
        return sum(r.socket_errors for r in self.runs)

    @property
    def errors(self) -> int:
        return self.bad_status + self.socket_errors


@dataclass
class Report:
    title: str
    info: list[str] = field(default_factory=list)
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    peak_rss: str = "unknown"  # of the server that ran get, create and the 10^3 list

    def add(self, scenario: Scenario) -> Scenario:
        self.scenarios[scenario.name] = scenario
        return scenario


def say(text: str = "") -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- processes


class Pinning:
    """Servers on CPU 0, load generators on CPU 1, when taskset and two CPUs are there."""

    def __init__(self, wanted: bool) -> None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        if not wanted:
            self.enabled, self.why = False, "off (--no-pin)"
        elif shutil.which("taskset") is None:
            self.enabled, self.why = False, "off (no taskset)"
        elif not {0, 1} <= cpus:
            self.enabled, self.why = False, f"off (CPUs 0 and 1 not both available: {sorted(cpus)})"
        else:
            self.enabled, self.why = True, "on (servers on CPU 0, wrk and pgbench on CPU 1; PostgreSQL unpinned)"

    def server(self, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", "0", *cmd] if self.enabled else cmd

    def client(self, cmd: list[str]) -> list[str]:
        return ["taskset", "-c", "1", *cmd] if self.enabled else cmd

    @staticmethod
    def all_cpus() -> str:
        """The CPUs an unpinned process gets: ours (the bench itself is not pinned)."""
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        return ",".join(map(str, cpus)) or "all"


def use_server_tree(tree: Path) -> str:
    """Run the real server from another checkout (bench/compare.py's "before"): its src first on
    the path and its own virtualenv's python when it has one (for its compiled trigger engine)."""
    global SRC_DIR, SERVER_PYTHON
    if not (tree / "src" / "opensupp").is_dir():
        raise SystemExit(f"--server-tree {tree}: no src/opensupp there")
    SRC_DIR = tree.resolve() / "src"
    venv_python = tree / ".venv" / "bin" / "python"
    if venv_python.exists():
        SERVER_PYTHON = str(venv_python)
    return f"the real server runs from {SRC_DIR} with {SERVER_PYTHON}"


def child_env(**extra: str) -> dict[str, str]:
    """The environment without the caller's OPENSUPP_* settings, the server's src first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSUPP_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC_DIR), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, headers: dict[str, str] | None = None, body: str | None = None) -> tuple[int, bytes]:
    data = body.encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Server:
    """A server process on CPU 0 at ``base`` (http://host:port), its stdout and stderr in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, base: str, health: str) -> None:
        self.name, self.cmd, self.env, self.log = name, cmd, env, log
        self.base, self.health = base, base + health
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_kib: int | None = None

    def start(self) -> None:
        with open(self.log, "wb") as log:
            # a session of its own: a Ctrl-C reaches us, and we stop it in order
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http("GET", self.health)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {self.health} within 60 s:\n{self.log_tail()}")

    def read_peak_rss(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def stop(self) -> None:
        """Record the peak RSS, then SIGTERM (uvicorn's graceful stop), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.peak_rss_kib = self.read_peak_rss()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def settle(self, timeout: float = 10.0) -> float:
        """Wait until the server is idle (< 5% of one CPU over 100 ms): work queued by a wrk run
        that has ended (hashes of requests still in flight) must not spill into the next run.
        Returns the seconds waited."""
        began = time.monotonic()
        if self.proc is None:
            return 0.0
        while time.monotonic() - began < timeout:
            before = proc_cpu_seconds(self.proc.pid)
            time.sleep(0.1)
            after = proc_cpu_seconds(self.proc.pid)
            if before is None or after is None or after - before < 0.005:
                break
        return time.monotonic() - began

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


ACCESS_LINE = re.compile(r'" (\d{3}) \d+ [\d.]+ms partner=')
PROBLEM_LINE = re.compile(r" (WARNING|ERROR|CRITICAL) |^Traceback ")


def scan_log(path: Path) -> tuple[str, list[str]]:
    """A one-line summary of a server log (access lines by status) and its problem lines."""
    statuses: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    with open(path, errors="replace") as log:
        for line in log:
            m = ACCESS_LINE.search(line)
            if m:
                statuses[m.group(1)] += 1
            elif PROBLEM_LINE.search(line):
                problems.append(line.rstrip())
    by_status = ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items())) or "none"
    return f"{sum(statuses.values()):,} access lines ({by_status}), {len(problems)} warning/error lines", problems


def proc_cpu_seconds(pid: int) -> float | None:
    """CPU seconds used so far by a process, all its threads (utime + stime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy(window: float = 0.25) -> float | None:
    """Share of all CPUs busy (not idle, not waiting for I/O) over ``window`` seconds, from /proc/stat."""
    def sample() -> tuple[int, int] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        return sum(fields[:8]), fields[3] + fields[4]  # user..steal; idle + iowait

    before = sample()
    time.sleep(window)
    after = sample()
    if before is None or after is None or after[0] == before[0]:
        return None
    return 1 - (after[1] - before[1]) / (after[0] - before[0])


def wait_quiet(limit: float = 0.10, timeout: float = 3.0) -> str:
    """Wait until the whole machine is nearly idle (< ``limit`` of all CPUs busy): the user
    scenario and its baseline use every CPU, so PostgreSQL's checkpoints or autovacuum after
    the creates, or the last server's shutdown, would take from whichever of them runs first."""
    began = time.monotonic()
    busy = None
    while time.monotonic() - began < timeout:
        busy = machine_busy()
        if busy is None or busy < limit:
            break
    waited = time.monotonic() - began
    state = "unknown" if busy is None else f"{busy:.0%} busy"
    return f"waited {waited:.1f} s for a quiet machine ({state}{', gave up' if busy and busy >= limit else ''})"


class CpuMeter:
    """CPU used during a run, as shares of one CPU: by a server process, and by our finished
    children (the wrk or pgbench run). A saturated server shows ~100%; a client near 100% means
    the load generator, not the server, may have been the limit."""

    def __init__(self, server: Server | None) -> None:
        self.pid = server.proc.pid if server is not None and server.proc is not None else None
        self.server: float | None = None
        self.client: float | None = None

    def _server_seconds(self) -> float | None:
        return None if self.pid is None else proc_cpu_seconds(self.pid)

    @staticmethod
    def _children_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> CpuMeter:
        self._wall, self._srv, self._cli = time.monotonic(), self._server_seconds(), self._children_seconds()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.monotonic() - self._wall
        srv = self._server_seconds()
        if srv is not None and self._srv is not None:
            self.server = (srv - self._srv) / wall
        self.client = (self._children_seconds() - self._cli) / wall


# --------------------------------------------------------------------------- load generators

# A counter per wrk thread, prefixed with the run's random prefix (args[1]) and the thread's
# number: unique across threads, rounds and runs.
LUA_COUNTER = r"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
local prefix = "bench-"
function init(args)
  prefix = (args[1] or "bench") .. "-" .. tostring(tid or 1) .. "-"
end
"""

LUA_IDEMPOTENCY = LUA_COUNTER + r"""
function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = prefix .. counter
  return wrk.format()
end
"""

# BODY_BEFORE .. unique .. BODY_AFTER is the body; wrk.format sets its Content-Length.
LUA_UNIQUE_BODY = LUA_COUNTER + r"""
function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, BODY_BEFORE .. prefix .. counter .. BODY_AFTER)
end
"""

LUA_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %.0f, "duration_us": %.0f, "status": %.0f, "connect": %.0f, "read": %.0f, ' ..
    '"write": %.0f, "timeout": %.0f, "p99_us": %.0f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(99)))
end
"""


def lua_string(text: str) -> str:
    if not text.isascii():
        raise ValueError("wrk scripts here carry ASCII only")
    return json.dumps(text)  # a JSON string of ASCII is a valid Lua string


class Wrk:
    def __init__(self, tmp: Path, pin: Pinning, threads: int, connections: int) -> None:
        self.tmp, self.pin, self.threads, self.connections = tmp, pin, threads, connections
        self._scripts = 0

    def script(self, method: str, headers: dict[str, str], body: str | None = None, idempotency: bool = False) -> Path:
        """``body`` containing ``UNIQUE`` gets a new value there on every request (not with ``idempotency``)."""
        lines = ["-- generated by bench/api.py", f"wrk.method = {lua_string(method)}"]
        dynamic = ""
        if body is not None and UNIQUE in body:
            if idempotency:
                raise ValueError("a unique body and an Idempotency-Key counter do not combine here")
            before, after = body.split(UNIQUE, 1)
            lines += [f"BODY_BEFORE = {lua_string(before)}", f"BODY_AFTER = {lua_string(after)}"]
            dynamic = LUA_UNIQUE_BODY
        elif body is not None:
            lines.append(f"wrk.body = {lua_string(body)}")
        if idempotency:
            dynamic = LUA_IDEMPOTENCY
        lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
        text = "\n".join(lines) + "\n" + dynamic + LUA_DONE
        self._scripts += 1
        path = self.tmp / f"wrk-{self._scripts}.lua"
        path.write_text(text)
        return path

    def run(
        self, url: str, script: Path, seconds: int, server: Server | None, connections: int | None = None
    ) -> Result:
        cmd = self.pin.client([
            "wrk", f"-t{self.threads}", f"-c{connections or self.connections}", f"-d{seconds}s", "--latency",
            "--timeout", "10s", "-s", str(script), url,
            "--", secrets.token_hex(6),  # a fresh prefix per run, for the Idempotency-Keys and unique e-mails
        ])
        with CpuMeter(server) as cpu:
            out = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
        s = json.loads(line.split(" ", 1)[1])
        return Result(
            rate=s["requests"] / (s["duration_us"] / 1e6),
            p99_ms=s["p99_us"] / 1000,
            bad_status=int(s["status"]),
            socket_errors=int(s["connect"] + s["read"] + s["write"] + s["timeout"]),
            server_cpu=cpu.server,
            client_cpu=cpu.client,
        )


PGBENCH_SCRIPT = """\
INSERT INTO {table} (partner_id, title, lang, account_key, created_at)
VALUES (:partner, 'Account name', 'en', substr(md5(random()::text) || md5(random()::text), 1, 40),
        extract(epoch from now())::bigint)
RETURNING id, title, lang, account_key, created_at;
"""
PGBENCH_TABLE = "bench_pgbench_accounts"
PGBENCH_DDL = f"""
CREATE TABLE {PGBENCH_TABLE} (
    id BIGSERIAL PRIMARY KEY,
    partner_id BIGINT NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    title VARCHAR(255) NOT NULL,
    lang VARCHAR(8) NOT NULL,
    account_key VARCHAR(40) NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX ON {PGBENCH_TABLE} (partner_id, id);
"""


class Pgbench:
    """pgbench's single-row INSERT into a scratch copy of ``accounts``: the PostgreSQL baseline."""

    def __init__(self, tmp: Path, pin: Pinning, connections: int, url: str, partner_id: int) -> None:
        self.tmp, self.pin, self.connections, self.url, self.partner_id = tmp, pin, connections, url, partner_id
        self.script = tmp / "pgbench-insert.sql"
        self.script.write_text(PGBENCH_SCRIPT.format(table=PGBENCH_TABLE))
        self._runs = 0

    def run(self, seconds: int) -> Result:
        self._runs += 1
        logs = self.tmp / f"pgbench-{self._runs}"
        logs.mkdir()
        cmd = self.pin.client([
            "pgbench", "-n", "-M", "prepared", "-c", str(self.connections), "-j", str(min(2, self.connections)),
            "-T", str(seconds), "-f", str(self.script), "-D", f"partner={self.partner_id}",
            "-l", f"--log-prefix={logs}/tx", self.url,
        ])
        with CpuMeter(None) as cpu:  # PostgreSQL's own processes are not measured
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=logs)
        tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", out.stdout, re.M)
        if tps is None:
            raise RuntimeError(f"pgbench failed ({out.returncode}): {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
        failed = re.search(r"^number of failed transactions: (\d+)", out.stdout, re.M)
        latencies, unparsed = [], 0
        for path in logs.iterdir():
            for line in path.read_text().splitlines():
                cols = line.split()
                if len(cols) > 2 and cols[2].isdigit():
                    latencies.append(int(cols[2]))
                else:
                    unparsed += 1
        shutil.rmtree(logs)
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1000 if latencies else float("nan")
        return Result(rate=float(tps.group(1)), p99_ms=p99, client_cpu=cpu.client,
                      bad_status=int(failed.group(1)) if failed else unparsed + (out.returncode != 0))


class HashRate:
    """bench/hash_rate.py: the server's argon2id hasher in CPUS threads, unpinned: the user-create baseline."""

    def __init__(self) -> None:
        self.cmd = [sys.executable, str(BENCH_DIR / "hash_rate.py"), "--threads", str(CPUS)]

    def run(self, seconds: int) -> Result:
        # a session of its own, as the servers have: the same scheduling (autogroup) as the server it is compared with
        out = subprocess.run(self.cmd + ["--seconds", str(seconds)], env=child_env(), capture_output=True, text=True,
                             start_new_session=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"hash_rate.py failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        s = json.loads(line.split(" ", 1)[1])
        return Result(rate=s["rate"], p99_ms=s["p99_ms"], server_cpu=s["cpu"])


# --------------------------------------------------------------------------- databases


def sql_now() -> int:
    return int(time.time())


class SQLiteBackend:
    name, title = "sqlite", "SQLite"

    def __init__(self, tmp: Path, stack: contextlib.ExitStack) -> None:
        self.tmp = tmp

    def new_database(self, label: str) -> str:
        return f"sqlite:///{self.tmp / f'{label}.db'}"  # an absolute path: four slashes

    @staticmethod
    def _connect(url: str) -> sqlite3.Connection:
        return sqlite3.connect(url.removeprefix("sqlite:///"))

    def fetchval(self, url: str, sql: str, *args: Any) -> Any:
        with contextlib.closing(self._connect(url)) as conn:
            row = conn.execute(re.sub(r"\$(\d+)", r"?\1", sql), args).fetchone()
            return None if row is None else row[0]

    def fill(self, url: str, partner_id: int, n: int) -> None:
        """n accounts for the partner, in one transaction; keys random (the index sees random inserts)."""
        first = sql_now() - n  # one account a second, up to now
        rows = ((partner_id, f"Account {i}", "en", os.urandom(16).hex() + f"{i:08x}", first + i) for i in range(n))
        with contextlib.closing(self._connect(url)) as conn, conn:
            conn.execute("PRAGMA cache_size = -262144")  # 256 MiB for this connection: random index inserts
            conn.executemany(
                "INSERT INTO accounts (partner_id, title, lang, account_key, created_at) VALUES (?, ?, ?, ?, ?)", rows
            )
        # No ANALYZE: the server never runs one, so production SQLite files have no statistics either.

    def describe(self, url: str) -> str:
        return f"SQLite {sqlite3.sqlite_version}, the server's WAL + synchronous=NORMAL"

    def prepare_baseline(self, url: str) -> None:
        pass


class PostgresBackend:
    name, title = "postgres", "PostgreSQL"

    def __init__(self, tmp: Path, stack: contextlib.ExitStack) -> None:
        import asyncpg  # a dependency of the project, needed only here

        self.asyncpg = asyncpg
        self.stack = stack
        self.prefix = f"opensupp_bench_{secrets.token_hex(4)}"
        self.base = PG_ADMIN_URL.rsplit("/", 1)[0]

    def _run(self, url: str, fn: Callable[[Any], Any]) -> Any:
        async def go() -> Any:
            conn = await self.asyncpg.connect(url, timeout=10)
            try:
                return await fn(conn)
            finally:
                await conn.close()

        return asyncio.run(go())

    def new_database(self, label: str) -> str:
        name = self.prefix if label == "main" else f"{self.prefix}_{label}"
        self._run(PG_ADMIN_URL, lambda c: c.execute(f'CREATE DATABASE "{name}"'))
        self.stack.callback(self.drop, name)
        return f"{self.base}/{name}"

    def drop(self, name: str) -> None:
        try:
            self._run(PG_ADMIN_URL, lambda c: c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:  # keep cleaning up the rest
            print(f"!! could not drop PostgreSQL database {name}: {exc!r}", file=sys.stderr)

    def fetchval(self, url: str, sql: str, *args: Any) -> Any:
        return self._run(url, lambda c: c.fetchval(sql, *args))

    def fill(self, url: str, partner_id: int, n: int) -> None:
        async def fill(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO accounts (partner_id, title, lang, account_key, created_at)"
                " SELECT $1, 'Account ' || g, 'en',"
                "   substr(md5(random()::text) || md5(random()::text), 1, 32) || lpad(to_hex(g), 8, '0'), $2 + g"
                " FROM generate_series(1, $3) AS g",
                partner_id, sql_now() - n, n,  # one account a second, up to now
            )
            await conn.execute("VACUUM (ANALYZE) accounts")  # what autovacuum does soon after a bulk load

        self._run(url, fill)

    def describe(self, url: str) -> str:
        async def settings(conn: Any) -> str:
            version = await conn.fetchval("SHOW server_version")
            values = [f"{s}={await conn.fetchval(f'SHOW {s}')}" for s in
                      ("max_connections", "shared_buffers", "synchronous_commit", "fsync")]
            return f"PostgreSQL {version} ({', '.join(values)}); database {url.rsplit('/', 1)[1]}"

        return self._run(url, settings)

    def prepare_baseline(self, url: str) -> None:
        self._run(url, lambda c: c.execute(PGBENCH_DDL))


# --------------------------------------------------------------------------- the run


@dataclass
class Context:
    args: argparse.Namespace
    tmp: Path
    stack: contextlib.ExitStack
    pin: Pinning
    wrk: Wrk
    raw: Server | None = None

    def start_server(self, name: str, cmd: list[str], port: int, health: str, pinned: bool = True,
                     **env: str) -> Server:
        log = self.tmp / f"{name}.log"
        cmd = self.pin.server(cmd) if pinned else cmd
        server = Server(name, cmd, child_env(**env), log, f"http://127.0.0.1:{port}", health)
        self.stack.callback(server.stop)
        server.start()
        return server

    def start_raw(self) -> Server:
        port = free_port()
        cmd = [sys.executable, str(BENCH_DIR / "raw_app.py"), "--host", "127.0.0.1", "--port", str(port)]
        self.raw = self.start_server("raw-asgi", cmd, port, "/")
        return self.raw

    def start_real(self, name: str, database_url: str, pinned: bool = True) -> Server:
        """``opensupp serve`` on the database; on CPU 0, or ``pinned=False``: on all our CPUs."""
        port = free_port()
        cmd = [SERVER_PYTHON, "-m", "opensupp", "serve", "--host", "127.0.0.1", "--port", str(port)]
        return self.start_server(name, cmd, port, "/healthz", pinned, OPENSUPP_DATABASE_URL=database_url)


def create_key(database_url: str, name: str) -> str:
    out = subprocess.run(
        [SERVER_PYTHON, "-m", "opensupp", "keys", "create", "--name", name],
        env=child_env(OPENSUPP_DATABASE_URL=database_url), capture_output=True, text=True,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"keys create failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout.strip().splitlines()[-1]


def cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(last_id.to_bytes(8, "big")).rstrip(b"=").decode()


def wrk_scenario(ctx: Context, name: str, server: Server, path: str, method: str = "GET",
                 headers: dict[str, str] | None = None, body: str | None = None, idempotency: bool = False,
                 expect: Callable[[Any], bool] | None = None, connections: int | None = None,
                 settle: bool = False) -> Scenario:
    """``body`` may contain ``UNIQUE``: each request then has its own value there.
    ``settle``: after each run, wait until the server has finished the work still queued."""
    url = server.base + path
    headers = dict(headers or {})
    if body is not None:
        headers["Content-Type"] = "application/json"
    script = ctx.wrk.script(method, headers, body, idempotency)

    def measure(seconds: int) -> Result:
        result = ctx.wrk.run(url, script, seconds, server, connections)
        if settle:
            server.settle()
        return result

    def check() -> str | None:
        sent = dict(headers, **({"Idempotency-Key": secrets.token_hex(8)} if idempotency else {}))
        sent_body = None if body is None else body.replace(UNIQUE, f"check-{secrets.token_hex(6)}")
        status, answer = http(method, url, sent, sent_body)
        if status != 200:
            return f"answers {status}: {answer[:300]!r}"
        if expect is not None and not expect(json.loads(answer)):
            return f"answers an unexpected body: {answer[:300]!r}"
        return None

    return Scenario(name, measure, check)


def run_group(ctx: Context, label: str, scenarios: list[Scenario]) -> None:
    """Check and warm up each scenario, then run them in turn, ``--rounds`` times."""
    for s in scenarios:
        if s.check is not None:
            problem = s.check()
            if problem:
                s.problems.append(problem)
                say(f"  !! {s.name}: {problem}")
        if ctx.args.warmup and s.warmup:
            s.measure(ctx.args.warmup)
    for n in range(1, ctx.args.rounds + 1):
        parts = []
        for s in scenarios:
            result = s.measure(ctx.args.duration)
            s.runs.append(result)
            flag = f" ({result.errors} errors!)" if result.errors else ""
            parts.append(f"{s.name} {result.rate:,.0f}/s{flag}")
        say(f"  {label} round {n}/{ctx.args.rounds}: " + "; ".join(parts))


@dataclass
class Fixture:
    """A fresh database with one partner, its key and its accounts, and the server on it."""

    url: str
    key: str
    partner: int
    account_id: int = 0  # one of the partner's accounts, for the get
    server: Server | None = None
    api_account: str = ""  # an account created through the API, for its triggers and users
    trigger_id: str = ""  # one trigger of it, created through the API, for the trigger get
    eval_account: str = ""  # an account with EVAL_TRIGGERS triggers, for the evaluate

    @property
    def auth(self) -> dict[str, str]:
        return {"apiKey": self.key}


def prepare(backend: SQLiteBackend | PostgresBackend, label: str, accounts: int) -> Fixture:
    url = backend.new_database(label)
    key = create_key(url, f"bench-{label}")
    partner = backend.fetchval(url, "SELECT partner_id FROM api_keys ORDER BY id DESC LIMIT 1")
    backend.fill(url, partner, accounts)
    account_id = backend.fetchval(
        url, "SELECT id FROM accounts WHERE partner_id = $1 ORDER BY id LIMIT 1 OFFSET $2", partner, accounts // 2
    )
    return Fixture(url, key, partner, account_id)


def api_create(server: Server, path: str, headers: dict[str, str], body: str) -> str:
    """POST a create through the API; the new id."""
    status, answer = http("POST", server.base + path, dict(headers, **{"Content-Type": "application/json"}), body)
    if status != 200:
        raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")
    return json.loads(answer)["id"]


def full_page(page: Any) -> bool:
    return len(page["records"]) == PAGE and page["next"] is not None


def measure_lists(ctx: Context, report: Report, backend: SQLiteBackend | PostgresBackend,
                  small: Fixture, large: Fixture) -> None:
    """The first page at 10^3 and at 10^6 rows, and a page near the end of the 10^6."""
    deep_after = backend.fetchval(
        large.url, "SELECT id FROM accounts WHERE partner_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
        large.partner, DEEP_OFFSET,
    )
    path = f"/accounts/?limit={PAGE}"
    group = [
        wrk_scenario(ctx, LIST_SMALL, small.server, path, headers=small.auth, expect=full_page),
        wrk_scenario(ctx, LIST_LARGE, large.server, path, headers=large.auth, expect=full_page),
        wrk_scenario(ctx, LIST_DEEP, large.server, f"{path}&after={cursor(deep_after)}", headers=large.auth,
                     expect=full_page),
    ]
    group[0].compares = [Compare(RAW_GET)]
    group[1].compares = group[2].compares = [Compare(LIST_SMALL, ceiling=LIST_CEILING)]
    run_group(ctx, "lists", [report.add(s) for s in group])


def measure_get(ctx: Context, report: Report, postgres: bool, main: Fixture) -> None:
    """One existing account, and one trigger, by id, against raw GET."""
    raw = wrk_scenario(ctx, RAW_GET, ctx.raw, "/")
    get = wrk_scenario(ctx, GET, main.server, f"/accounts/{main.account_id}/get", headers=main.auth,
                       expect=lambda a: a["id"] == str(main.account_id))
    trigger = wrk_scenario(ctx, TRIGGER_GET, main.server,
                           f"/accounts/{main.api_account}/triggers/{main.trigger_id}/get",
                           headers=main.auth, expect=lambda t: t["id"] == main.trigger_id)
    evaluate = wrk_scenario(ctx, EVALUATE, main.server, f"/accounts/{main.eval_account}/triggers/evaluate", "POST",
                            main.auth, EVAL_BODY, expect=evaluated)
    for s in (get, trigger):
        s.compares = [Compare(RAW_GET, summary=True)] if postgres else [Compare(RAW_GET, floor=SQLITE_GET_FLOOR)]
    evaluate.compares = [Compare(GET, floor=EVALUATE_FLOOR)]
    run_group(ctx, "get", [report.add(raw), report.add(get), report.add(trigger), report.add(evaluate)])


def evaluated(answer: Any) -> bool:
    fires = [t["fires"] for t in answer["triggers"]]
    return (len(fires) == EVAL_TRIGGERS and all(len(t["reasons"]) == 4 for t in answer["triggers"])
            and "later" in fires and "never" in fires)


def engine_rate(seconds: float = 2.0) -> str:
    """The engine alone (no HTTP, no database) on the same 50 triggers and visitor: the
    account's plan built once, as the server caches it, then per evaluation the visitor's
    context and the decisions' JSON (``engine.context`` + ``Plan.run``)."""
    sys.path.insert(0, str(SRC_DIR))
    from opensupp.triggers import engine, plan

    triggers = [
        engine.compile_trigger({"id": i, "active": True, "only_once": True, "constraints": "all", **eval_trigger(i)})
        for i in range(EVAL_TRIGGERS)
    ]
    planned = plan.Plan(triggers, engine.EVENTS)
    body = json.loads(EVAL_BODY)
    instant = datetime.datetime.now(datetime.UTC)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(100):
            planned.run(engine.context(body["event"], body["visitor"], instant, datetime.UTC))
        runs += 100
    rate = runs / (time.perf_counter() - started)
    how = "compiled by Cython" if plan.COMPILED else "NOT compiled: plain Python"
    return (f"engine alone (engine.context + Plan.run, {how}, in this process, unpinned): {rate:,.0f} evaluations/s "
            f"of {EVAL_TRIGGERS} triggers x 4 conditions = {rate * EVAL_TRIGGERS:,.0f} trigger decisions/s "
            f"({1e6 / rate:.1f} us each)")


def measure_create(ctx: Context, report: Report, postgres: bool, main: Fixture) -> None:
    """Creates (they add rows, so they come last), against raw POST and, on PostgreSQL, pgbench."""
    def created(a: Any) -> bool:
        return len(a["accountKey"]) == 40

    def trigger_created(t: Any) -> bool:
        return t["name"] == "1st visit greeting" and len(t["conditions"]) == 4 and t["id"] != main.trigger_id

    path = "/accounts/create"
    group = [wrk_scenario(ctx, RAW_POST, ctx.raw, "/", "POST", body=CREATE_BODY)]
    if postgres:
        pgbench = Pgbench(ctx.tmp, ctx.pin, ctx.args.connections, main.url, main.partner)
        group.append(Scenario(PGBENCH, pgbench.run))
    create = wrk_scenario(ctx, CREATE, main.server, path, "POST", main.auth, CREATE_BODY, expect=created)
    create_idem = wrk_scenario(ctx, CREATE_IDEM, main.server, path, "POST", main.auth, CREATE_BODY,
                               idempotency=True, expect=created)
    trigger = wrk_scenario(ctx, TRIGGER_CREATE, main.server, f"/accounts/{main.api_account}/triggers/create", "POST",
                           main.auth, TRIGGER_BODY, expect=trigger_created)
    if postgres:
        create.compares = trigger.compares = [Compare(PGBENCH, floor=POSTGRES_CREATE_FLOOR),
                                              Compare(RAW_POST, summary=True)]
        create_idem.compares = [Compare(PGBENCH), Compare(RAW_POST)]
    else:
        create.compares = trigger.compares = [Compare(RAW_POST, floor=SQLITE_CREATE_FLOOR)]
        create_idem.compares = [Compare(RAW_POST)]
    run_group(ctx, "create", [report.add(s) for s in group + [create, create_idem, trigger]])


def measure_users(ctx: Context, report: Report, main: Fixture, server: Server) -> None:
    """User creates (an argon2id hash each) on an unpinned server, against the bare hash rate, unpinned too."""
    def user_created(u: Any) -> bool:
        return u["email"].endswith("@example.com") and "password" not in u and "password_hash" not in u

    hashing = Scenario(HASH, HashRate().run, warmup=False, all_cpus=True)
    create = wrk_scenario(ctx, USER_CREATE, server, f"/accounts/{main.api_account}/users/create", "POST", main.auth,
                          USER_BODY, expect=user_created, connections=ctx.args.user_connections, settle=True)
    create.compares = [Compare(HASH, floor=USER_FLOOR)]
    say(f"  users: {wait_quiet()}")
    run_group(ctx, "users", [report.add(hashing), report.add(create)])


def note_servers(report: Report, main: Server, large: Server, users: Server) -> None:
    for server, role in ((main, "get, create, list @ 10^3 rows"), (large, "lists @ 10^6 rows"),
                         (users, f"user create, unpinned (CPUs {Pinning.all_cpus()})")):
        rss = f"{server.peak_rss_kib / 1024:.1f} MiB" if server.peak_rss_kib else "unknown"
        summary, problems = scan_log(server.log)
        report.notes.append(f"server for {role}: peak RSS (VmHWM) {rss}; log: {summary}")
        report.notes += [f"  !! {line}" for line in problems[:10]]
        if server is main:
            report.peak_rss = rss


def bench_backend(ctx: Context, backend: SQLiteBackend | PostgresBackend) -> Report:
    report = Report(backend.title)
    postgres = isinstance(backend, PostgresBackend)
    say(f"\n== {backend.title}: preparing databases")
    # The main database: the list partner's 10^3 rows, then gets and creates (creates last).
    main = prepare(backend, "main", SMALL)
    backend.prepare_baseline(main.url)
    report.info.append(backend.describe(main.url))
    # A second database with 10^6 rows: each list measurement sees its own table size.
    started = time.monotonic()
    large = prepare(backend, "large", LARGE)
    say(f"  filled {LARGE:,} accounts in {time.monotonic() - started:.1f} s")
    for fixture, label in ((main, "main"), (large, "large")):
        fixture.server = ctx.start_real(f"{backend.name}-{label}", fixture.url)

    say(f"== {backend.title}: measuring ({ctx.args.rounds} rounds of {ctx.args.duration} s per scenario)")
    measure_lists(ctx, report, backend, main, large)
    large.server.stop()  # frees its PostgreSQL connections before pgbench opens its own
    # After the lists (which count on exactly 10^3 accounts): an account made through the API,
    # for the triggers and users, and one trigger in it for the trigger get.
    main.api_account = api_create(main.server, "/accounts/create", main.auth, '{"title":"x","lang":"en"}')
    main.trigger_id = api_create(main.server, f"/accounts/{main.api_account}/triggers/create", main.auth, TRIGGER_BODY)
    main.eval_account = api_create(main.server, "/accounts/create", main.auth, '{"title":"eval","lang":"en"}')
    for i in range(EVAL_TRIGGERS):
        api_create(main.server, f"/accounts/{main.eval_account}/triggers/create", main.auth,
                   json.dumps(eval_trigger(i)))
    if SRC_DIR == OWN_SRC_DIR:  # the engine alone runs in this process: this checkout's engine only
        report.notes.append(engine_rate())
    measure_get(ctx, report, postgres, main)
    measure_create(ctx, report, postgres, main)
    main.server.stop()
    # User creates hash in the server's thread pool, which inherits the server's CPU affinity:
    # pinned to CPU 0 it would hash on one CPU only. So they get a server of their own on the
    # same database, unpinned like their baseline (see bench/README.md).
    users = ctx.start_real(f"{backend.name}-users", main.url, pinned=False)
    measure_users(ctx, report, main, users)
    users.stop()

    note_servers(report, main.server, large.server, users)
    report.scenarios = {name: report.scenarios[name] for name in (
        RAW_GET, RAW_POST, PGBENCH, HASH, GET, CREATE, CREATE_IDEM, TRIGGER_GET, EVALUATE, TRIGGER_CREATE, USER_CREATE,
        LIST_SMALL, LIST_LARGE, LIST_DEEP,
    ) if name in report.scenarios}
    return report


# --------------------------------------------------------------------------- output


@dataclass
class Verdict:
    text: str  # PASS, FAIL, INVALID, or "" for information
    ratio: str
    bound: str


def judge(report: Report, s: Scenario, c: Compare) -> Verdict:
    base = report.scenarios[c.baseline]
    erroneous = s.errors or base.errors or s.problems or base.problems
    if c.ceiling is not None:
        cost = base.rate / s.rate
        ok = cost <= c.ceiling
        verdict = "INVALID" if erroneous else "PASS" if ok else "FAIL"
        return Verdict(verdict, f"{cost:.2f}x cost", f"<= {c.ceiling:.2f}x")
    ratio = s.rate / base.rate
    if c.floor is None:
        return Verdict("", f"{ratio:.1%}", "info")
    verdict = "INVALID" if erroneous else "PASS" if ratio >= c.floor else "FAIL"
    return Verdict(verdict, f"{ratio:.1%}", f">= {c.floor:.0%}")


def print_report(report: Report) -> list[str]:
    """The table; returns the summary lines of its floors."""
    say(f"\n== {report.title} results")
    for line in report.info:
        say(f"  {line}")
    header = ("scenario", "req/s", "p99 ms", "spread", "errors", "CPU srv/cli", "compared with", "ratio", "floor",
              "verdict")
    rows: list[tuple[str, ...]] = []
    summary: list[str] = []
    for s in report.scenarios.values():
        cpu = "/".join("-" if x is None else f"{x:.0%}" for x in (s.server_cpu, s.client_cpu))
        cells = (s.name, f"{s.rate:,.0f}", f"{s.p99_ms:.1f}", f"±{s.spread:.0%}", f"{s.errors:,}", cpu)
        if not s.compares:
            rows.append(cells + ("", "", "", ""))
        for i, c in enumerate(s.compares):
            v = judge(report, s, c)
            rows.append((cells if i == 0 else ("",) * len(cells)) + (c.baseline, v.ratio, v.bound, v.text))
            if v.text:
                summary.append(f"FLOOR {report.title}: {s.name} vs {c.baseline}: {v.ratio} ({v.bound}) {v.text}")
            elif c.summary:
                summary.append(f"INFO  {report.title}: {s.name} vs {c.baseline}: {v.ratio}")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    right = {1, 2, 3, 4, 5, 7}
    for row in [header] + rows:
        say("  " + "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
    for s in report.scenarios.values():
        if s.errors:
            say(f"  !! {s.name}: {s.bad_status:,} non-2xx responses (wrk: status >= 400; pgbench: failed "
                f"transactions) and {s.socket_errors:,} socket errors: it MEASURES ERRORS, NOT WORK")
        for problem in s.problems:
            say(f"  !! {s.name}: the request checked by hand {problem}")
        if s.all_cpus and s.server_cpu is not None and s.server_cpu < BUSY_MACHINE * CPUS:
            say(f"  !! {s.name}: used {s.server_cpu:.0%} CPU of the {CPUS * 100}% it could: other processes took "
                "CPU, so this baseline, and the ratio against it, is unreliable")
        if (s.client_cpu or 0) >= CLIENT_BOUND:
            say(f"  !! {s.name}: the load generator used {s.client_cpu:.0%} of its CPU: it may be the limit, "
                "not the server")
    for note in report.notes:
        say(f"  {note}")
    summary.append(f"RSS   {report.title}: real server peak RSS (VmHWM) {report.peak_rss}")
    summary += [f"!!    {report.title}: {s.name} had {s.errors:,} errors: it measures errors, not work"
                for s in report.scenarios.values() if s.errors]
    summary += [f"!!    {report.title}: {s.name}: the request checked by hand {problem}"
                for s in report.scenarios.values() for problem in s.problems]
    summary += [f"!!    {report.title}: {s.name} used {s.server_cpu:.0%} CPU of {CPUS * 100}%: a busy machine, "
                "the ratio against it is unreliable" for s in report.scenarios.values()
                if s.all_cpus and s.server_cpu is not None and s.server_cpu < BUSY_MACHINE * CPUS]
    return summary


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark the opensupp partner API against raw ASGI and pgbench.")
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--duration", type=int, default=4, help="seconds per run (default 4)")
    p.add_argument("--connections", type=int, default=64, help="wrk connections and pgbench clients (default 64)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--user-connections", type=int, default=2 * CPUS,
                   help=f"wrk connections for user create, which is CPU-bound (default 2 x CPUs = {2 * CPUS})")
    p.add_argument("--rounds", type=int, default=3, help="runs per scenario, alternated with its baseline (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load per scenario first (default 1)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    p.add_argument("--server-tree", type=Path, help="run the real server from this checkout (default: this one)")
    p.add_argument("--keep-temp", action="store_true", help="keep the temp dir (server logs, SQLite files)")
    args = p.parse_args(argv)
    if (args.duration < 1 or args.rounds < 1 or args.connections < 1 or args.threads < 1 or args.warmup < 0
            or args.user_connections < 1):
        p.error("--duration, --rounds, --connections, --user-connections and --threads must be at least 1, "
                "--warmup at least 0")
    if min(args.connections, args.user_connections) < args.threads:
        p.error("--connections and --user-connections must be at least --threads")
    return args


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    for tool in ("wrk",) + (("pgbench",) if args.backend != "sqlite" else ()):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="opensupp-bench-"))
    if args.keep_temp:
        stack.callback(say, f"kept {tmp}")
    else:
        stack.callback(shutil.rmtree, tmp, True)
    if args.server_tree:
        say(use_server_tree(args.server_tree))
    pin = Pinning(not args.no_pin)
    ctx = Context(args, tmp, stack, pin, Wrk(tmp, pin, args.threads, args.connections))
    started = time.monotonic()

    say(f"opensupp API benchmark: wrk -t{args.threads} -c{args.connections}, {args.duration} s per run, "
        f"{args.rounds} rounds alternated with the baseline (medians shown), {args.warmup} s warm-up per scenario")
    say(f"CPU pinning: {pin.why}")
    say(f"user create: its own server, unpinned (CPUs {Pinning.all_cpus()}), wrk -c{args.user_connections}, against "
        f"the bare argon2id hash rate of {CPUS} threads, unpinned (bench/hash_rate.py)")
    say(f"python {sys.version.split()[0]} ({sys.executable}); uvicorn loop=uvloop http=httptools, 1 worker; "
        f"access log on (to a file) for the real server, off for raw ASGI")

    raw = ctx.start_raw()

    backends = {"sqlite": [SQLiteBackend], "postgres": [PostgresBackend],
                "both": [SQLiteBackend, PostgresBackend]}[args.backend]
    reports = [bench_backend(ctx, cls(tmp, stack)) for cls in backends]
    raw.stop()

    summary: list[str] = []
    for report in reports:
        summary += print_report(report)
    _, raw_problems = scan_log(raw.log)
    say(f"\nraw ASGI server: peak RSS (VmHWM) {(raw.peak_rss_kib or 0) / 1024:.1f} MiB; "
        f"{len(raw_problems)} warning/error lines in its log")
    for line in raw_problems[:10]:
        say(f"  !! {line}")
    say(f"\nsummary ({time.monotonic() - started:.0f} s; a measurement, the exit code is 0 whatever it says):")
    for line in summary:
        say(f"  {line}")


def run_with_cleanup(run: Callable[[argparse.Namespace, contextlib.ExitStack], None], args: argparse.Namespace) -> int:
    """Run a benchmark; whatever happens (Ctrl-C, SIGTERM, an error), stop what it started."""

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    stack = contextlib.ExitStack()
    try:
        run(args, stack)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_with_cleanup(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
