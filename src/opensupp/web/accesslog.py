"""The access log: one line per request, written in batches.

The logging module's cost per record (record object, formatter, a write and a flush per
line) is as much as the rest of a small request; so access lines are formatted
with one f-string (or one orjson call for ``OPENSUPP_LOG_FORMAT=json``), buffered, and
written every 0.2 s (or every 1000 lines) in writes of at most 4 KiB cut at line ends,
which pipes keep whole even when several worker processes share stderr. The lines look
like the logging module's (logs.py), in the same format, logger ``opensupp.access``.
What is buffered is written when the app shuts down (``run`` is cancelled then); a line
added while ``run`` is not running (before the start, after the shutdown) is written at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

import orjson

PIPE_BUF = 4096


class AccessLog:
    def __init__(self, stream: TextIO | None = None, every: float = 0.2, most: int = 1000, json: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self.most = most
        self.json = json
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""
        self._stopped = False

    def add(self, client: str, method: str, path: str, status: int, size: int, ms: float, partner: object,
            request_id: str = "-") -> None:
        t = time.time()
        second = int(t)
        if self.json:
            self._lines.append(_json_line(t, client, method, path, status, size, ms, partner, request_id))
        else:
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._lines.append(
                f'{self._stamp},{int((t - second) * 1000):03d} INFO opensupp.access: '
                f'{client} "{method} {path}" {status} {size} {ms:.1f}ms partner={partner} id={request_id}\n'
            )
        if len(self._lines) >= self.most or self._stopped:
            self.flush()

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        chunk: list[str] = []
        size = 0
        for line in lines:
            if size + len(line) > PIPE_BUF and chunk:
                self.stream.write("".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            self.stream.write("".join(chunk))
        if lines:
            self.stream.flush()

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.every)
                self.flush()
        finally:
            self._stopped = True
            self.flush()


def _json_line(t: float, client: str, method: str, path: str, status: int, size: int, ms: float, partner: object,
               request_id: str) -> str:
    """One access line as logs.py's JSON formatter writes a record, with the request's fields."""
    return orjson.dumps({
        "time": datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds"),
        "level": "INFO", "logger": "opensupp.access",
        "message": f'{client} "{method} {path}" {status}',
        "request_id": request_id, "client": client, "method": method, "path": path, "status": status,
        "bytes": size, "ms": round(ms, 1), "partner": partner if partner != "-" else None,
    }).decode() + "\n"
