"""Hooks: names, events, the URL and secret rules and the config check, as pure functions.

A hook is ``{"name", "config": {"url", "secret", "events"?}, "active"}`` (API.md, "Hooks").
``config.url`` must be an http(s) URL that does not name an internal host outright: a
literal loopback, private, link-local, unspecified, multicast, reserved or shared address
(however it is spelled: ``[::1]``, ``::ffff:127.0.0.1``, ``127.1``, ``0x7f.0.0.1``,
``0177.0.0.1``, ``2130706433``, full-width digits) or ``localhost`` is refused at once.
Other names are accepted here; the delivery worker resolves them and refuses internal
addresses again with ``is_internal_address``, on every delivery.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
import socket
from typing import Any
from urllib.parse import urlsplit

from opensupp.errors import FieldError, unknown_fields

HOOK_NAMES = ("domain-stats-report", "conversation-export", "webhook")
WEBHOOK_EVENTS = (
    "conversation.opened",
    "conversation.closed",
    "conversation.rated",
    "conversation.agent_joined",
    "conversation.agent_replied",
    "conversation.contact_replied",
    "offline_message.created",
)

MAX_URL_LENGTH = 2000
MIN_SECRET_LENGTH = 16
MAX_SECRET_LENGTH = 256
SECRET_PREFIX = "whsec_"

# ----------------------------------------------------------------------------- addresses

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Spelled out rather than left to ``is_global`` alone, whose tables differ between Python
# patch releases; ``is_global`` and friends are consulted as well.
_INTERNAL_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 included
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata services live here)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, 255.255.255.255 included
    )
)
_INTERNAL_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo included)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible ::a.b.c.d (and :: and ::1)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: ::a.b.c.d reaches a.b.c.d


def is_internal_address(ip: IPAddress) -> bool:
    """True when ``ip`` is not a globally routable unicast address.

    Loopback, private, link-local, unspecified, multicast, reserved, shared (100.64/10),
    documentation and benchmarking ranges, unique-local and site-local IPv6, addresses
    with a zone (``fe80::1%eth0``), and the IPv6 forms of an IPv4 address: IPv4-mapped
    (``::ffff:a.b.c.d``) and NAT64 (``64:ff9b::a.b.c.d``) ones are judged by the IPv4
    address they reach, the deprecated IPv4-compatible ones (``::a.b.c.d``) are always
    refused, and 6to4 ones (``2002:AABB:CCDD::``) are refused when their IPv4 part is.
    Use it on the literal address of a URL and again on every address a host name
    resolves to, just before connecting.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return True
        if ip.ipv4_mapped is not None:
            return is_internal_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_internal_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _V4_COMPATIBLE:
            return True
        if ip.sixtofour is not None and is_internal_address(ip.sixtofour):
            return True
        networks: tuple[Any, ...] = _INTERNAL_V6
        site_local = ip.is_site_local
    else:
        networks = _INTERNAL_V4
        site_local = False
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or site_local
        or any(ip in network for network in networks)
    )


# ----------------------------------------------------------------------------- URLs

_FORBIDDEN_CHARACTER = re.compile(r"[\x00-\x20\x7f-\x9f\s\\]")
_PORT = re.compile(r"[0-9]{1,5}")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any spelling that inet_aton and the WHATWG URL parser accept.

    One to four dot-separated parts, each decimal, octal (leading 0) or hex (0x); the last
    part fills the remaining bytes: ``127.1``, ``0x7f.0.0.1``, ``0177.0.0.1``,
    ``2130706433``. None when ``host`` is not such a spelling.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    numbers = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part[0] == "0":
            if not all(c in "01234567" for c in part):
                return None
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _host_problem(host: str, bracketed: bool) -> str | None:
    if bracketed:
        try:
            ip6 = ipaddress.IPv6Address(host)
        except ValueError:
            return "must have a valid IPv6 address between the brackets"
        return "must not point at an internal address" if is_internal_address(ip6) else None

    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")  # what a client would look up (NFKC and all)
        except UnicodeError:
            return "must have a valid host name"
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        return "must have a host"
    if host == "localhost" or host.endswith(".localhost"):
        return "must not point at localhost"

    ip = _legacy_ipv4(host)
    if ip is None:
        try:  # belt and braces: whatever the C library's resolver would take for an address
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            ip = None
    if ip is not None:
        return "must not point at an internal address" if is_internal_address(ip) else None
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        # ends in a number but is no IPv4 address: browsers refuse it, resolvers may guess
        return "must have a valid host name or IP address"
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        return "must have a valid host name"
    return None


def check_url(url: object) -> str | None:
    """None when ``url`` is an acceptable hook URL, else what is wrong with it."""
    if not isinstance(url, str):
        return "must be a string"
    if not url:
        return "must not be empty"
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if _FORBIDDEN_CHARACTER.search(url):
        return "must not contain spaces, backslashes or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "must be a valid URL"
    if parts.scheme not in ("http", "https") or not url.lower().startswith(parts.scheme + "://"):
        return "must be an http:// or https:// URL"
    netloc = parts.netloc
    if "@" in netloc:
        return "must not contain a user name or password"

    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            return "must have a valid IPv6 address between the brackets"
        host, rest, bracketed = netloc[1:end], netloc[end + 1 :], True
    else:
        host, colon, port = netloc.partition(":")
        rest, bracketed = colon + port, False
    if rest:
        if not rest.startswith(":"):
            return "must be a valid URL"
        port = rest[1:]
        if port and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
            return "must have a port from 1 to 65535"
    if not host:
        return "must have a host"
    return _host_problem(host, bracketed)


# ----------------------------------------------------------------------------- secrets


def new_secret() -> str:
    """32 random bytes, in the Standard Webhooks format ``whsec_<base64>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_secret(secret: object) -> str | None:
    """None when ``secret`` is 16 to 256 printable ASCII characters (no spaces), else a message."""
    if not isinstance(secret, str):
        return "must be a string"
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        return f"must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters"
    if not all("\x21" <= c <= "\x7e" for c in secret):
        return "must contain only printable ASCII characters (no spaces)"
    return None


# ----------------------------------------------------------------------------- config


def check_name(name: object) -> str | None:
    """None when ``name`` is a hook name, else a message listing them."""
    if isinstance(name, str) and name in HOOK_NAMES:
        return None
    return f"must be one of: {', '.join(HOOK_NAMES)}"


def allowed_config_keys(name: str) -> tuple[str, ...]:
    return ("url", "secret", "events") if name == "webhook" else ("url", "secret")


def validate_hook_config(name: str, config: object, path: str = "config") -> tuple[dict[str, Any], list[FieldError]]:
    """Check a hook's ``config`` for the hook ``name``; return it normalized and every problem.

    The normalized config has ``url``, ``secret`` (generated when not given) and, for
    ``webhook``, ``events`` (all of ``WEBHOOK_EVENTS`` when not given, else as sent). It is
    meaningful only when the error list is empty. For a ``name`` that is not a hook name
    (the caller reports that, with ``check_name``), only ``url`` and ``secret`` are
    checked and other keys are not judged.
    """
    if not isinstance(config, dict):
        return {}, [FieldError(path, "must be an object")]
    errors: list[FieldError] = []
    allowed = allowed_config_keys(name)
    if name in HOOK_NAMES and not all(key in allowed for key in config):
        not_known = f"is not a known field for a {name} hook (allowed: {', '.join(allowed)})"
        errors += unknown_fields(config, allowed, path, not_known)

    out: dict[str, Any] = {}
    if "url" not in config:
        errors.append(FieldError(f"{path}.url", "is required"))
    else:
        message = check_url(config["url"])
        if message is not None:
            errors.append(FieldError(f"{path}.url", message))
        out["url"] = config["url"]

    if "secret" in config:
        message = check_secret(config["secret"])
        if message is not None:
            errors.append(FieldError(f"{path}.secret", message))
        out["secret"] = config["secret"]
    else:
        out["secret"] = new_secret()

    if name == "webhook":
        out["events"] = _validate_events(config.get("events", list(WEBHOOK_EVENTS)), f"{path}.events", errors)
    return out, errors


def _validate_events(value: Any, path: str, errors: list[FieldError]) -> Any:
    if not isinstance(value, list):
        errors.append(FieldError(path, "must be a list"))
        return value
    if not value:
        errors.append(FieldError(path, "must have at least one event"))
        return value
    if len(value) > len(WEBHOOK_EVENTS):
        errors.append(FieldError(path, f"must have at most {len(WEBHOOK_EVENTS)} items (each event once)"))
        return value
    seen: dict[str, int] = {}
    for i, event in enumerate(value):
        if not isinstance(event, str) or event not in WEBHOOK_EVENTS:
            errors.append(FieldError(f"{path}[{i}]", f"must be one of: {', '.join(WEBHOOK_EVENTS)}"))
        elif event in seen:
            errors.append(FieldError(f"{path}[{i}]", f"is listed twice (also {path}[{seen[event]}])"))
        else:
            seen[event] = i
    return list(value)
