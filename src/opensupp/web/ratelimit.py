"""Per-key token buckets (off unless OPENSUPP_RATE_LIMIT is set).

The buckets live in the process: with ``--workers N`` each worker allows the rate.
"""

from __future__ import annotations

import math
import time

from opensupp.errors import RateLimited


class RateLimiter:
    def __init__(self, rate: float, burst: int = 0) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, int(2 * rate)))
        self._buckets: dict[int, tuple[float, float]] = {}

    def check(self, key_id: int) -> None:
        t = time.monotonic()
        tokens, last = self._buckets.get(key_id, (self.burst, t))
        tokens = min(self.burst, tokens + (t - last) * self.rate)
        if tokens < 1:
            self._buckets[key_id] = (tokens, t)
            wait = math.ceil((1 - tokens) / self.rate)
            raise RateLimited(f"Too many requests: this key may make {self.rate:g} per second; retry in {wait} s.",
                              wait)
        self._buckets[key_id] = (tokens - 1, t)
