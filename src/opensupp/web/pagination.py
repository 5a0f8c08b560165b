"""Keyset paging: ``limit`` and ``after``, answered as ``{"records", "next"}``.

A cursor is the last id of a page, packed into 8 bytes and base64url-encoded without
padding: URL-safe as it is, so the PHP wrapper can append it to a path verbatim.
"""

from __future__ import annotations

import base64
import binascii
import re

from opensupp.errors import invalid

MAX_LIMIT = 1000
# 64 bits in 11 characters: the top bit is 0 (a BIGINT id), the 2 padding bits are 0
CURSOR_PATTERN = "^[A-Za-f][A-Za-z0-9_-]{9}[AEIMQUYcgkosw048]$"
_CURSOR = re.compile(CURSOR_PATTERN)
_LIMIT = re.compile(r"[0-9]{1,4}")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(last_id.to_bytes(8, "big")).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> int:
    if _CURSOR.match(cursor):
        try:
            last_id = int.from_bytes(base64.urlsafe_b64decode(cursor + "="), "big")
        except (binascii.Error, ValueError):
            last_id = -1
        if encode_cursor(last_id) == cursor:
            return last_id
    raise invalid("after", "is not a cursor this server issued; pass the previous page's next")


def parse_page(query: dict[str, str]) -> tuple[int, int]:
    """(limit, after id) from the query string."""
    raw_limit = query.get("limit")
    if raw_limit is None:
        limit = MAX_LIMIT
    elif _LIMIT.fullmatch(raw_limit) and 1 <= int(raw_limit) <= MAX_LIMIT:
        limit = int(raw_limit)
    else:
        raise invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    after = query.get("after")
    return limit, (decode_cursor(after) if after else 0)
