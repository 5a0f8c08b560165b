"""The XMPP addresses: agents are ``uid<ID>@<domain>``, as the guide says; visitors are
``<visitor>@visitors.<domain>``, where ``<visitor>`` is the visitor's id (``vid``: 16 random
bytes, URL-safe base64) in lower-case hex: XMPP folds the case of an address's local part,
which base64 needs."""

from __future__ import annotations

import base64
import binascii
import re

AGENT = re.compile(r"uid([1-9][0-9]{0,17})")
VISITOR = re.compile(r"[0-9a-f]{32}")


def agent_local(user_id: int) -> str:
    return f"uid{user_id}"


def user_of(local: str) -> int | None:
    """The user id of an agent's local part (``uid42``), or None."""
    found = AGENT.fullmatch(local or "")
    return int(found.group(1)) if found else None


def visitor_local(vid: str) -> str | None:
    """A vid's local part, or None for a vid that is not 16 bytes of URL-safe base64."""
    try:
        raw = base64.urlsafe_b64decode(vid + "==")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 or base64.urlsafe_b64encode(raw).decode().rstrip("=") != vid:
        return None
    return raw.hex()


def vid_of(local: str) -> str | None:
    """The vid of a visitor's local part, or None."""
    if not VISITOR.fullmatch(local or ""):
        return None
    return base64.urlsafe_b64encode(bytes.fromhex(local)).decode().rstrip("=")
