"""Logging: one format for our lines and uvicorn's, to stderr."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "asyncpg"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        # uvicorn checks ``logger.level`` (not the effective level) before every trace
        # call on the request path; an unset level costs ~20% of the request rate.
        logger.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True  # ours redacts the apiKey
