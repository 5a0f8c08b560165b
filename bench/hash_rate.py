"""The user-create baseline: the bare argon2id hash rate on all cores, without the server.

Hashes with the server's own hasher (``opensupp.passwords.HASHER``, so always its
parameters) in ``--threads`` threads of one process (default ``os.cpu_count()``, the size
of the server's hash pool), each hashing in a loop for ``--seconds``. argon2-cffi releases
the GIL while hashing, as it does in the server's pool. Not pinned: it runs on whatever
CPUs it inherits. Prints one line for ``bench/api.py``:

    BENCHJSON {"rate": hashes per second, all threads, "p99_ms": ..., "cpu": share of one CPU, ...}

    python bench/hash_rate.py --seconds 4
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

from opensupp.passwords import HASHER

PASSWORD = "john.doe.secret"  # the bench's user-create password


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    HASHER.hash(PASSWORD)  # loads the library outside the measured window
    start = threading.Barrier(args.threads + 1)
    counts = [0] * args.threads
    spans = [0.0] * args.threads
    latencies: list[list[float]] = [[] for _ in range(args.threads)]

    def work(i: int) -> None:
        start.wait()
        began = last = time.perf_counter()
        deadline = began + args.seconds
        while last < deadline:
            HASHER.hash(PASSWORD)
            now = time.perf_counter()
            latencies[i].append(now - last)
            counts[i] += 1
            last = now
        spans[i] = last - began  # up to the end of its last hash: no partial hash is counted

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    wall, cpu = time.perf_counter(), time.process_time()
    start.wait()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    each = sorted(x for lat in latencies for x in lat)
    p99 = each[min(len(each) - 1, int(len(each) * 0.99))] * 1000 if each else float("nan")
    print("BENCHJSON " + json.dumps({
        "rate": sum(c / s for c, s in zip(counts, spans, strict=True) if s > 0),
        "p99_ms": p99,
        "cpu": cpu / wall,
        "threads": args.threads,
        "hashes": sum(counts),
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }), flush=True)


if __name__ == "__main__":
    main()
