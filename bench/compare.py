"""The partner API before and after a change, in one run: bench/api.py on each checkout, alternated.

    python bench/compare.py --before ../other-checkout [--backend sqlite|postgres|both]
                            [--pairs 1] [-- bench/api.py options ...]

``--before`` is another checkout of opensupp with its own ``.venv`` (``make install`` there).
Each pair runs bench/api.py once with the real server from ``--before`` and once from this
checkout, per backend, in the order before, after (so a machine slowing down over the run
counts against the change, not for it). Every run measures its own baselines (raw ASGI,
pgbench, the bare hash rate), so what is compared is each run's ratios; this prints them side
by side with the floors' verdicts. The output of every run is kept in the temp dir it names.
It is a measurement: the exit code is 0 whatever the figures say.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
#: a summary line of bench/api.py: "FLOOR SQLite ...: get vs raw ASGI GET: 38.5% (>= 30%) PASS"
SUMMARY = re.compile(r"^\s*(FLOOR|INFO)\s+(?P<title>[^:]+): (?P<what>.+?): (?P<ratio>[0-9.]+%|[0-9.]+x cost)"
                     r"(?: \((?P<bound>[^)]*)\) (?P<verdict>\w+))?\s*$")
RSS = re.compile(r"^\s*RSS\s+(?P<title>[^:]+): real server peak RSS \(VmHWM\) (?P<rss>.+)$")


def run_once(tree: Path | None, backend: str, extra: list[str], log: Path) -> list[str]:
    cmd = [sys.executable, str(BENCH_DIR / "api.py"), "--backend", backend, *extra]
    if tree is not None:
        cmd += ["--server-tree", str(tree)]
    print(f"$ {' '.join(cmd)}  > {log}", flush=True)
    with log.open("w") as out:
        subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    lines = log.read_text().splitlines()
    if not any(line.startswith("summary (") for line in lines):
        print(f"  !! that run did not finish: see {log}", flush=True)
    return lines


def parse(lines: list[str]) -> dict[tuple[str, str], str]:
    figures: dict[tuple[str, str], str] = {}
    for line in lines:
        if m := SUMMARY.match(line):
            verdict = f" {m['verdict']}" if m["verdict"] else ""
            figures[(m["title"].strip(), m["what"])] = f"{m['ratio']}{verdict}"
        elif m := RSS.match(line):
            figures[(m["title"].strip(), "peak RSS")] = m["rss"]
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True, help="the checkout to compare with (its .venv is used)")
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--pairs", type=int, default=1, help="before/after pairs per backend (default 1)")
    p.add_argument("rest", nargs="*", help="options passed to bench/api.py (after --)")
    args = p.parse_args(argv)
    if not (args.before / "src" / "opensupp").is_dir():
        p.error(f"--before {args.before}: not an opensupp checkout")
    logs = Path(tempfile.mkdtemp(prefix="opensupp-compare-"))
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    started = time.monotonic()
    results: dict[str, list[dict[tuple[str, str], str]]] = defaultdict(list)
    for backend in backends:
        for pair in range(args.pairs):
            for side, tree in (("before", args.before.resolve()), ("after", None)):
                lines = run_once(tree, backend, args.rest, logs / f"{backend}-{pair}-{side}.log")
                results[side].append(parse(lines))

    keys: list[tuple[str, str]] = []
    for side in ("before", "after"):
        for figures in results[side]:
            keys += [k for k in figures if k not in keys]
    rows = [("figure", "before", "after")]
    for key in keys:
        cells = [", ".join(f[key] for f in results[side] if key in f) or "-" for side in ("before", "after")]
        rows.append((f"{key[0]}: {key[1]}", *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"\nbefore: {args.before.resolve()}  after: {BENCH_DIR.parent}  "
          f"({time.monotonic() - started:.0f} s; logs in {logs})")
    for row in rows:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
