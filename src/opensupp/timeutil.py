"""Timestamps: stored as integer Unix seconds, answered as ISO 8601 UTC."""

from __future__ import annotations

import functools
import time


def now() -> int:
    return int(time.time())


@functools.lru_cache(maxsize=4096)  # rows made together share their second
def iso(ts: int) -> str:
    # not time.strftime: it consults the locale and time zone on every call, far slower
    t = time.gmtime(ts)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z"
