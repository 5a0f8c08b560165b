"""Benchmark `opensupp provision` against wrk's account-create rate; see bench/README.md.

    python bench/provision.py [--backend sqlite|postgres|both] [--accounts 10000]
                              [--rounds 3] [--concurrency 64] [--duration 4]
                              [--cli-concurrency 8] [--batch-size 100]

Per backend: a fresh database, a key, the real server on CPU 0 (access log on, to a file).
Then, ``--rounds`` times in turn: wrk's account-create rate (exactly as bench/api.py
measures it), and ``opensupp provision`` of an NDJSON file of ``--accounts`` accounts (no
users), on CPU 1 like wrk, with the CLI's own defaults (8 requests in flight, up to 100
calls per POST /batch; ``--batch-size 1`` measures one request per call). The floor: the CLI
reaches at least 80% of wrk's rate, so the client is never the bottleneck. Prints the
medians, the ratio, the CLI's and the server's peak RSS. A measurement, not a test: the exit
code is 0 whatever the floor says. Everything it starts or creates is removed at the end,
also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import api as benchapi  # bench/api.py (the script's own directory is on sys.path): servers, wrk, pinning, databases
from api import say

FLOOR = 0.80  # the CLI's rate >= 80% of wrk's account-create rate against the same server


@dataclass
class CliRun:
    rate: float  # rows per second, over the CLI's wall time (process start to exit)
    engine_rate: float  # rows per second over the CLI's own "seconds" (its run, without start-up)
    wall: float
    peak_rss_kib: int
    server_cpu: float | None
    client_cpu: float | None
    problems: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    title: str
    info: list[str] = field(default_factory=list)
    wrk: list[benchapi.Result] = field(default_factory=list)
    wrk_idem: list[benchapi.Result] = field(default_factory=list)
    cli: list[CliRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    server_rss: str = "unknown"
    server_log: str = ""


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


class Cli:
    """`opensupp provision` of a fresh NDJSON file per round, pinned like wrk, timed and measured."""

    def __init__(self, ctx: benchapi.Context, server: benchapi.Server, key: str, accounts: int, concurrency: int,
                 batch_size: int,
                 label: str) -> None:
        self.ctx, self.server, self.key, self.accounts, self.concurrency = ctx, server, key, accounts, concurrency
        self.batch_size = batch_size
        self.label = label
        self.runs = 0

    def run(self) -> CliRun:
        self.runs += 1
        tag = f"{self.label}-{self.runs}"
        work = self.ctx.tmp / f"provision-{tag}"
        work.mkdir()
        data = work / "accounts.ndjson"
        with open(data, "w") as f:
            f.writelines(json.dumps({"title": f"Bulk {tag}-{i}", "lang": "en"}) + "\n" for i in range(self.accounts))
        cmd = self.ctx.pin.client([
            sys.executable, "-m", "opensupp", "provision", str(data), "--api-url", self.server.base,
            "--concurrency", str(self.concurrency), "--batch-size", str(self.batch_size), "--output", "json",
        ])
        # the key through the environment (as the CLI's help advises), not in the process list
        env = benchapi.child_env(OPENSUPP_API_KEY=self.key)
        out_path, err_path = work / "stdout.json", work / "stderr.txt"
        with open(out_path, "wb") as out, open(err_path, "wb") as err, benchapi.CpuMeter(self.server) as cpu:
            began = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            try:
                _, status, usage = os.wait4(proc.pid, 0)  # taskset execs: this is the CLI's own rusage
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            wall = time.monotonic() - began
            proc.returncode = os.waitstatus_to_exitcode(status)
        problems: list[str] = []
        summary: dict[str, Any] = {}
        try:
            summary = json.loads(out_path.read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"no JSON summary on stdout ({exc}); stderr: {err_path.read_text(errors='replace')[-500:]}")
        if proc.returncode != 0:
            problems.append(f"exit status {proc.returncode}")
        if summary and (summary.get("succeeded") != self.accounts or summary.get("failed") != 0):
            problems.append(f"succeeded {summary.get('succeeded')} of {self.accounts}, failed "
                            f"{summary.get('failed')}, pending {summary.get('pending')}, stopped "
                            f"{summary.get('stopped')!r}; first failures: {summary.get('failures', [])[:3]}")
        seconds = summary.get("seconds") or 0
        done = summary.get("succeeded", 0) or 0
        shutil.rmtree(work, ignore_errors=True)  # the file, its journal and results (10^4 rows each)
        return CliRun(rate=done / wall, engine_rate=done / seconds if seconds else math.nan, wall=wall,
                      peak_rss_kib=usage.ru_maxrss, server_cpu=cpu.server, client_cpu=cpu.client, problems=problems)


def bench_backend(ctx: benchapi.Context, backend: Any, args: argparse.Namespace) -> Outcome:
    outcome = Outcome(backend.title)
    say(f"\n== {backend.title}: preparing")
    url = backend.new_database("main")
    key = benchapi.create_key(url, "bench-provision")
    outcome.info.append(backend.describe(url))
    server = ctx.start_real(f"{backend.name}-provision", url)
    auth = {"apiKey": key}

    def created(a: Any) -> bool:
        return len(a["accountKey"]) == 40

    create = benchapi.wrk_scenario(ctx, benchapi.CREATE, server, "/accounts/create", "POST", auth,
                                   benchapi.CREATE_BODY, expect=created)
    # the CLI sends an Idempotency-Key with every create: the same with wrk, for information
    create_idem = benchapi.wrk_scenario(ctx, benchapi.CREATE_IDEM, server, "/accounts/create", "POST", auth,
                                        benchapi.CREATE_BODY, idempotency=True, expect=created)
    cli = Cli(ctx, server, key, args.accounts, args.cli_concurrency, args.batch_size, f"{backend.name}-{os.getpid()}")
    for s in (create, create_idem):
        problem = s.check()
        if problem:
            outcome.problems.append(f"{s.name}: the request checked by hand {problem}")
            say(f"  !! {s.name}: {problem}")
        if args.warmup:
            s.measure(args.warmup)

    say(f"== {backend.title}: measuring ({args.rounds} rounds: wrk {args.duration} s, then provision of "
        f"{args.accounts:,} accounts)")
    for n in range(1, args.rounds + 1):
        w = create.measure(args.duration)
        wi = create_idem.measure(args.duration)
        c = cli.run()
        outcome.wrk.append(w)
        outcome.wrk_idem.append(wi)
        outcome.cli.append(c)
        flags = "".join(f" ({r.errors} errors!)" for r in (w, wi) if r.errors)
        say(f"  round {n}/{args.rounds}: wrk create {w.rate:,.0f}/s; wrk create + Idempotency-Key {wi.rate:,.0f}/s; "
            f"provision {c.rate:,.0f} rows/s ({c.wall:.1f} s wall, CPU srv/cli {pct(c.server_cpu)}/"
            f"{pct(c.client_cpu)}, peak RSS {c.peak_rss_kib / 1024:.1f} MiB){flags}")
        for problem in c.problems:
            outcome.problems.append(f"provision round {n}: {problem}")
            say(f"  !! provision round {n}: {problem}")

    server.stop()
    outcome.server_rss = f"{server.peak_rss_kib / 1024:.1f} MiB" if server.peak_rss_kib else "unknown"
    outcome.server_log, log_problems = benchapi.scan_log(server.log)
    outcome.problems += [f"server log: {line}" for line in log_problems[:10]]
    return outcome


def print_outcome(o: Outcome, args: argparse.Namespace) -> list[str]:
    say(f"\n== {o.title} results (medians of {args.rounds} rounds)")
    for line in o.info:
        say(f"  {line}")
    wrk_rate = median([r.rate for r in o.wrk])
    idem_rate = median([r.rate for r in o.wrk_idem])
    cli_rate = median([c.rate for c in o.cli])
    engine_rate = median([c.engine_rate for c in o.cli])
    ratio = cli_rate / wrk_rate if wrk_rate else math.nan
    wrk_errors = sum(r.errors for r in o.wrk) + sum(r.errors for r in o.wrk_idem)
    invalid = wrk_errors or any(c.problems for c in o.cli) or any("checked by hand" in p for p in o.problems)
    verdict = "INVALID" if invalid else "PASS" if ratio >= FLOOR else "FAIL"
    cli_rss = max(c.peak_rss_kib for c in o.cli) / 1024
    rows = [
        ("wrk account create", f"{wrk_rate:,.0f} req/s",
         f"{pct(median([r.server_cpu for r in o.wrk]))}/{pct(median([r.client_cpu for r in o.wrk]))}",
         f"{sum(r.errors for r in o.wrk):,}"),
        ("wrk account create + Idempotency-Key (info)", f"{idem_rate:,.0f} req/s",
         f"{pct(median([r.server_cpu for r in o.wrk_idem]))}/{pct(median([r.client_cpu for r in o.wrk_idem]))}",
         f"{sum(r.errors for r in o.wrk_idem):,}"),
        (f"provision {args.accounts:,} accounts, -c{args.cli_concurrency} -b{args.batch_size}",
         f"{cli_rate:,.0f} rows/s",
         (f"{pct(median([c.server_cpu for c in o.cli if c.server_cpu is not None]))}/"
          f"{pct(median([c.client_cpu for c in o.cli if c.client_cpu is not None]))}"),
         f"{sum(bool(c.problems) for c in o.cli)} bad runs"),
    ]
    header = ("measure", "rate", "CPU srv/cli", "errors")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    for row in [header] + rows:
        say("  " + "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    say(f"  provision rate over its own 'seconds' (without process start-up), for information: "
        f"{engine_rate:,.0f} rows/s")
    say(f"  ratio provision / wrk create: {ratio:.1%} (floor >= {FLOOR:.0%}): {verdict}")
    say(f"  ratio provision / wrk create + Idempotency-Key, for information: {cli_rate / idem_rate:.1%}")
    say(f"  CLI peak RSS (ru_maxrss, max of rounds): {cli_rss:.1f} MiB; server peak RSS (VmHWM): {o.server_rss}")
    say(f"  server log: {o.server_log}")
    for problem in o.problems:
        say(f"  !! {problem}")
    summary = [(f"FLOOR {o.title}: provision {cli_rate:,.0f} rows/s vs wrk account create {wrk_rate:,.0f} req/s: "
                f"{ratio:.1%} (>= {FLOOR:.0%}) {verdict}"),
               f"RSS   {o.title}: provision CLI {cli_rss:.1f} MiB, server {o.server_rss}"]
    summary += [f"!!    {o.title}: {p}" for p in o.problems]
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark `opensupp provision` against wrk's account-create rate.")
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--accounts", type=int, default=10_000, help="accounts per provision run (default 10000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of wrk and provision, alternated (default 3)")
    p.add_argument("--concurrency", type=int, default=64,
                   help="wrk's connections (default 64)")
    p.add_argument("--cli-concurrency", type=int, default=8, help="provision's --concurrency (default 8, its own)")
    p.add_argument("--batch-size", type=int, default=100, help="provision's --batch-size (default 100, its own)")
    p.add_argument("--duration", type=int, default=4, help="seconds per wrk run (default 4)")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured wrk load first (default 1)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs with taskset")
    p.add_argument("--keep-temp", action="store_true", help="keep the temp dir (server log, wrk scripts)")
    args = p.parse_args(argv)
    if min(args.accounts, args.rounds, args.concurrency, args.duration, args.cli_concurrency, args.batch_size) < 1 \
            or args.warmup < 0:
        p.error("--accounts, --rounds, --concurrency, --cli-concurrency, --batch-size and --duration "
                "must be at least 1, --warmup at least 0")
    return args


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="opensupp-bench-provision-"))
    if args.keep_temp:
        stack.callback(say, f"kept {tmp}")
    else:
        stack.callback(shutil.rmtree, tmp, True)
    pin = benchapi.Pinning(not args.no_pin)
    ctx = benchapi.Context(args, tmp, stack, pin, benchapi.Wrk(tmp, pin, 1, args.concurrency))
    started = time.monotonic()
    say(f"opensupp provision benchmark: {args.accounts:,} accounts (no users) per provision run, "
        f"--concurrency {args.cli_concurrency} --batch-size {args.batch_size}; "
        f"wrk -t1 -c{args.concurrency}, {args.duration} s per run; "
        f"{args.rounds} rounds alternated (medians shown)")
    say(f"CPU pinning: {pin.why.replace('wrk and pgbench', 'wrk and provision')}")
    say(f"python {sys.version.split()[0]} ({sys.executable}); server access log on (to a file)")
    backends = {"sqlite": [benchapi.SQLiteBackend], "postgres": [benchapi.PostgresBackend],
                "both": [benchapi.SQLiteBackend, benchapi.PostgresBackend]}[args.backend]
    outcomes = [bench_backend(ctx, cls(tmp, stack), args) for cls in backends]
    summary: list[str] = []
    for o in outcomes:
        summary += print_outcome(o, args)
    say(f"\nsummary ({time.monotonic() - started:.0f} s; a measurement, the exit code is 0 whatever it says):")
    for line in summary:
        say(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    return benchapi.run_with_cleanup(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
