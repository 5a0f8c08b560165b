"""Prometheus metrics: ``GET /metrics`` (on unless ``OPENSUPP_METRICS=0``).

- ``opensupp_http_requests_total{route, status}``: answered requests, by the route's
  template (``/accounts/{id}/get``; ``(unmatched)`` when no route matched, and the web
  pages' own templates) and status;
- ``opensupp_http_request_duration_seconds{route}``: a histogram of the time to answer;
- ``opensupp_db_pool_*``: the PostgreSQL pool (its size, open and idle connections, units
  of work holding one and waiting for one); SQLite has no pool and reports none.

Counting is a dict update and a bisect per request, in this module's plain counters; the
prometheus-client collector (``collect``) turns them into metric families only when
scraped, so the request path takes no lock and builds no label objects. Each app has its
own ``CollectorRegistry`` (never the global one): several apps in one process (tests) keep
separate counts. The counts are per process: with ``--workers N`` a scrape sees the worker
that answered it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from opensupp.web.request import Answer, Request
from opensupp.web.routing import Router

#: the histogram's upper bounds, in seconds
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()


class Metrics:
    """One app's counters and the registry that exposes them."""

    def __init__(self, db: Any = None) -> None:
        self.db = db
        self._requests: dict[tuple[str, int], int] = {}
        self._latency: dict[str, list[float]] = {}  # route: [count per bucket..., over the last, sum]
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # a collector: anything with collect()

    def observe(self, route: str, status: int, seconds: float) -> None:
        """One answered request."""
        key = (route, status)
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        counts = self._latency.get(route)
        if counts is None:
            counts = self._latency[route] = [0.0] * (len(BUCKETS) + 2)
        counts[bisect_left(BUCKETS, seconds)] += 1
        counts[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("opensupp_http_requests", "HTTP requests answered, by route template and status",
                                       labels=["route", "status"])
        for (route, status), count in sorted(self._requests.items()):
            requests.add_metric([route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily("opensupp_http_request_duration_seconds",
                                        "Time from a request's arrival to its answer, by route template",
                                        labels=["route"])
        for route, counts in sorted(self._latency.items()):
            buckets: list[tuple[str, float]] = []
            total: float = 0
            for bound, in_bucket in zip(BUCKETS, counts[: len(BUCKETS)], strict=True):
                total += in_bucket
                buckets.append((repr(bound), total))
            total += counts[len(BUCKETS)]
            buckets.append(("+Inf", total))
            latency.add_metric([route], buckets, sum_value=counts[-1])
        yield latency
        yield from self._pool()

    def _pool(self) -> Iterator[Metric]:
        """The PostgreSQL pool's gauges, as far as the database object exposes them."""
        db = self.db
        size = getattr(db, "pool_size", None)
        if size is None:
            return
        yield GaugeMetricFamily("opensupp_db_pool_size", "Most connections the pool may open", value=size)
        pool = getattr(db, "_pool", None)
        if pool is not None:
            yield GaugeMetricFamily("opensupp_db_pool_connections", "Connections open", value=pool.get_size())
            yield GaugeMetricFamily("opensupp_db_pool_idle", "Connections open and idle", value=pool.get_idle_size())
        free = getattr(db, "_free", None)
        if isinstance(free, int):
            yield GaugeMetricFamily("opensupp_db_pool_busy", "Units of work holding a connection (of the pool size)",
                                    value=size - free)
        waiting = getattr(db, "_waiting", None)
        if waiting is not None:
            yield GaugeMetricFamily("opensupp_db_pool_waiting", "Units of work waiting for a connection",
                                    value=len(waiting))

    def render(self) -> bytes:
        return generate_latest(self.registry)


router = Router()


@router.add("page", "/metrics", tag="System", public=True, raw=True)
async def metrics(req: Request) -> Answer:
    """Prometheus metrics (not part of the partner API's document)"""
    assert req.app.metrics is not None  # the route is there only with the metrics
    return 200, [(b"content-type", CONTENT_TYPE)], req.app.metrics.render()
