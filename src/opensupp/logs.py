"""Logging: one format for our lines and uvicorn's, to stderr, every logger named ``opensupp.*``.

``OPENSUPP_LOG_FORMAT``: ``text`` (``time LEVEL logger: message [id=request id]``) or
``json`` (one object per line: ``time``, ``level``, ``logger``, ``message``,
``request_id`` (null outside a request), the fields a record was given with ``extra=``, and ``exc_info`` as text).
A line written while a request is served carries that request's id (web/requestid.py);
the access log (web/accesslog.py) writes its lines itself, in the same two formats.

uvicorn logs its server's life (started, listening, shutting down) and its protocol
warnings under ``uvicorn.error``: they are shown as ``opensupp.server``.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from opensupp.web.requestid import request_id

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(request_suffix)s"

#: a LogRecord's own attributes (and uvicorn's terminal-coloured copy of its message): the
#: rest came from ``extra=`` and go into a JSON line
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "request_id", "request_suffix", "taskName", "color_message"}


class RequestContext(logging.Filter):
    """Gives every record the id of the request being served (``-`` outside one) and shows
    third-party servers' loggers under ``opensupp.server``."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid
        record.request_suffix = f" id={rid}" if rid != "-" else ""
        if record.name.startswith("uvicorn"):
            record.name = "opensupp.server"
        return True


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if (rid := getattr(record, "request_id", "-")) == "-" else rid,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "asyncpg"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        # uvicorn checks ``logger.level`` (not the effective level) before every trace
        # call on the request path; an unset level costs a large share of the request rate.
        logger.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True  # ours redacts the apiKey
