"""The request id: one per request, in its ``X-Request-Id`` answer header and in every log
line written while it is served (``request_id``, read by logs.py's filter and the access log).

A client's own ``X-Request-Id`` is kept when it is 1 to 128 printable ASCII characters other
than space, ``"`` and ``\\`` (so it can go in a log line or a JSON field as it is); otherwise
the server makes one: this process's random prefix and a counter, unique without a system
call per request.
"""

from __future__ import annotations

import itertools
import re
import secrets
from contextvars import ContextVar

#: the id of the request being served by the running task ("-" outside any)
request_id: ContextVar[str] = ContextVar("opensupp_request_id", default="-")

_VALID = re.compile(rb"[!#-\[\]-~]{1,128}")
_PREFIX = secrets.token_hex(5)
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):07x}"


def valid_request_id(given: bytes) -> str | None:
    """``given`` as the request's id, or None when a client's id is not one to keep."""
    return given.decode("ascii") if _VALID.fullmatch(given) else None
