"""Who is calling: a request's apiKey checked with as few database queries as possible,
failed checks limited per client address, and the key kept out of the log.

- A key found is trusted for ``OPENSUPP_KEY_CACHE_SECONDS`` (a revoked key stops within
  that), then looked up again.
- A key not found is remembered for ``OPENSUPP_KEY_MISS_CACHE_SECONDS``, so a bad key
  repeated costs no query. The price: a key created meanwhile (by another process) works
  once that has passed.
- Every failed check (an unknown or revoked key) spends one of the client address's
  ``OPENSUPP_AUTH_FAILURES_PER_MINUTE``. With none left, a key is answered ``429`` with
  ``Retry-After`` before any query, unless this process has accepted that key before: a
  partner's working integration is then not locked out by a broken one, or an attacker,
  behind the same address (GitHub and GitLab lock out valid credentials too; an attacker
  gains nothing here, since a key counts as accepted only after it was found). Requests
  without a key cost no query and are not counted. Successes never spend anything.

The caches and the budget are per process and bounded (least recently used entries go),
so their memory is too, whatever a client sends.

A key accepted then spends one of its ``OPENSUPP_RATE_LIMIT`` tokens, when a rate is set,
and its ``last_used_at`` is written at most once a minute per key and process, in the
background.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from opensupp.config import Settings
from opensupp.db import Database
from opensupp.errors import AuthError, RateLimited, Unavailable
from opensupp.partners import service as partners
from opensupp.partners.service import Principal
from opensupp.timeutil import now
from opensupp.web.ratelimit import RateLimiter

if TYPE_CHECKING:
    from opensupp.web.request import Request

log = logging.getLogger("opensupp.web")

MAX_SHOWN_KEY = 64
KEYS_KEPT = 10_000
MISSES_KEPT = 10_000
ADDRESSES_KEPT = 100_000
TOUCH_EVERY = 60


class KeyCache:
    """Keys found: trusted for ``ttl`` seconds; kept (as accepted once) until ``size`` more
    recently used keys push them out."""

    def __init__(self, ttl: float, size: int = KEYS_KEPT) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()

    def get(self, key_hash: bytes) -> Principal | None:
        """The key's principal while it is trusted, else None (look it up)."""
        entry = self._entries.get(key_hash)
        if entry is not None and entry[1] > time.monotonic():
            self._entries.move_to_end(key_hash)
            return entry[0]
        return None

    def accepted(self, key_hash: bytes) -> bool:
        return key_hash in self._entries

    def put(self, key_hash: bytes, principal: Principal) -> None:
        self._entries[key_hash] = (principal, time.monotonic() + self.ttl)
        self._entries.move_to_end(key_hash)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, key_hash: bytes) -> None:
        self._entries.pop(key_hash, None)


class MissCache:
    """Keys not found, remembered for ``ttl`` seconds (at most ``size`` of them)."""

    def __init__(self, ttl: float, size: int = MISSES_KEPT) -> None:
        self.ttl = ttl
        self.size = size
        self._expiry: OrderedDict[bytes, float] = OrderedDict()  # in expiry order: one ttl for all

    def __contains__(self, key_hash: bytes) -> bool:
        expiry = self._expiry.get(key_hash)
        if expiry is None:
            return False
        if expiry > time.monotonic():
            return True
        del self._expiry[key_hash]
        return False

    def add(self, key_hash: bytes) -> None:
        if self.ttl <= 0:
            return
        self._expiry[key_hash] = time.monotonic() + self.ttl
        self._expiry.move_to_end(key_hash)
        if len(self._expiry) > self.size:
            self._expiry.popitem(last=False)


class FailureBudget:
    """Failed authentications per client address: a bucket of ``per_minute`` tokens, refilled
    evenly over a minute (a burst of ``per_minute``, then one every ``60 / per_minute`` s).
    Only addresses that failed are kept, the ``size`` most recent."""

    def __init__(self, per_minute: int, size: int = ADDRESSES_KEPT) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60
        self.size = size
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address: (tokens, when)

    def wait(self, address: str) -> int:
        """Seconds until ``address`` may fail again; 0: now."""
        tokens = self._tokens(address, time.monotonic())
        return 0 if tokens >= 1 else math.ceil((1 - tokens) / self.rate)

    def spend(self, address: str) -> None:
        t = time.monotonic()
        self._buckets[address] = (self._tokens(address, t) - 1, t)
        self._buckets.move_to_end(address)
        if len(self._buckets) > self.size:
            self._buckets.popitem(last=False)

    def _tokens(self, address: str, t: float) -> float:
        tokens, last = self._buckets.get(address, (self.per_minute, t))
        return min(self.per_minute, tokens + (t - last) * self.rate)


def client_address(client: tuple[str, int] | list[object] | None) -> str:
    """Whom a failure budget belongs to: the client's IPv4 address, or its IPv6 /64 (one
    machine usually holds a whole /64, so single addresses would cost it nothing)."""
    if not client:
        return "-"
    host = str(client[0])
    if ":" not in host:
        return host
    try:
        ip = ipaddress.IPv6Address(host)
    except ValueError:
        return host
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


class Authenticator:
    """The caches, the failure budget and the rate limit of one process, in front of the key
    table. ``spawn`` runs a background coroutine (the app's: its tasks end at shutdown)."""

    def __init__(self, settings: Settings, db: Database,
                 spawn: Callable[[Coroutine[Any, Any, None]], None] | None = None) -> None:
        self.db = db
        self.keys = KeyCache(settings.key_cache_seconds)
        self.misses = MissCache(settings.key_miss_cache_seconds)
        per_minute = settings.auth_failures_per_minute
        self.failures = FailureBudget(per_minute) if per_minute else None
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        self.spawn = spawn
        self._touched: dict[int, int] = {}

    async def authenticate(self, req: Request, api_key: str | None, client: tuple[str, int] | None) -> None:
        """Fill ``req``'s partner and key from its apiKey (the header's, else the query's):
        AuthError without a valid one, RateLimited over the rate or the failure budget."""
        if api_key is None:
            api_key = req.query.get("apiKey")
        if not api_key:
            raise AuthError("No apiKey given.")
        key_hash = partners.hash_key(api_key)
        principal = self.keys.get(key_hash)
        if principal is None:
            principal = await self.look_up(api_key, key_hash, client)
        req.partner_id = principal.partner_id
        req.key_id = principal.key_id
        if self.limiter is not None:
            self.limiter.check(principal.key_id)
        self._touch(principal.key_id)

    def _touch(self, key_id: int) -> None:
        """Record when a key was last used, at most once a minute per key and process."""
        t = now()
        if t - self._touched.get(key_id, 0) >= TOUCH_EVERY and self.spawn is not None:
            self._touched[key_id] = t
            self.spawn(self._write_touch(key_id, t))

    async def _write_touch(self, key_id: int, t: int) -> None:
        try:
            async with self.db.single() as session:
                await partners.touch_key(session, key_id=key_id, at=t)
        except Unavailable:
            pass  # the database's Health has logged the outage
        except Exception:
            log.warning("could not record last use of key %s", key_id, exc_info=True)

    async def look_up(self, api_key: str, key_hash: bytes, client: tuple[str, int] | None) -> Principal:
        """Who ``api_key`` belongs to, when ``self.keys`` does not trust it (the caller asks
        that first: the common case is a hash and an LRU look-up, without a coroutine);
        AuthError when no one, RateLimited when the client's address has failed too often
        (both without a query when they can be)."""
        address = client_address(client)
        self._check_budget(address, key_hash)
        principal = None
        if key_hash not in self.misses:
            async with self.db.read() as session:
                principal = await partners.authenticate(session, key_hash=key_hash)
        if principal is None:
            self._failed(address, key_hash)
            shown = api_key if len(api_key) <= MAX_SHOWN_KEY else api_key[:MAX_SHOWN_KEY] + "..."
            raise AuthError(f"No account found for apiKey {shown}.")
        self.keys.put(key_hash, principal)
        return principal

    def _check_budget(self, address: str, key_hash: bytes) -> None:
        if self.failures is None or self.keys.accepted(key_hash):
            return
        wait = self.failures.wait(address)
        if wait:
            raise RateLimited(
                f"Too many failed authentications from {address}: at most {self.failures.per_minute} a minute "
                f"per address; check the apiKey, and retry in {wait} s.", wait)

    def _failed(self, address: str, key_hash: bytes) -> None:
        self.keys.forget(key_hash)  # revoked since it was accepted
        self.misses.add(key_hash)
        if self.failures is not None:
            self.failures.spend(address)


def redact_query(query_string: bytes) -> str:
    """The query string as sent, except that every parameter whose name decodes to
    ``apiKey`` in any case (decoded as ``Request.query`` decodes it, so ``%61piKey`` too)
    is logged as ``<name as sent>=[redacted]``; a name that decodes to something longer
    starting so (``apiKey%3D<key>``) is logged as ``[redacted]`` whole."""
    qs = query_string.decode("latin-1")
    if "%" not in qs and "apikey" not in qs.lower():
        return qs  # no name can decode to apiKey
    return "&".join(_redact_pair(pair) for pair in qs.split("&"))


def _redact_pair(pair: str) -> str:
    name = pair.partition("=")[0]
    decoded = unquote_plus(name).strip().lower()  # what parse_qsl does to a name, then any case
    if decoded == "apikey":
        return f"{name}=[redacted]"
    if decoded.startswith("apikey"):
        return "[redacted]"
    return pair
