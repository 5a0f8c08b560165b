"""One HTTP delivery: signed, with a timeout and a bounded response, no redirects, and only
to an address that is not internal, the one checked being the one connected to."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

from opensupp.hooks.validation import SECRET_PREFIX, is_internal_address

log = logging.getLogger("opensupp.outbox")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TIMEOUT = httpx.Timeout(10.0, pool=10.0)  # each step: connect, each read, each write, a free connection
CONNECTIONS = 20  # as many as a worker has attempts in flight (worker.BATCH): a slow receiver never starves the others
ATTEMPT_SECONDS = 30.0  # a whole attempt, however the receiver drips its answer
MAX_RESPONSE = 64 * 1024  # bytes of a response read; the rest is not


class RefusedAddress(OSError):
    """The host resolves to an address deliveries may not reach."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """OPENSUPP_HOOK_ALLOW_NETWORKS: CIDRs, comma-separated (ValueError for a bad one)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Sequence[Network]) -> bool:
    return not is_internal_address(ip) or any(ip in network for network in networks)


async def resolve_checked(host: str, port: int, networks: Sequence[Network]) -> list[str]:
    """The addresses to connect to, in the resolver's order, when none ``host`` resolves to is
    refused (one refused address refuses the host: a name that mixes them is not trusted)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if not allowed(ipaddress.ip_address(address.split("%")[0]), networks):
            # the partner reads the error (the log, the admin page): the address itself is the server's own
            log.info("delivery refused: %s resolves to %s, an internal address", host, address)
            raise RefusedAddress(f"{host} resolves to an internal address")
    if not addresses:
        raise RefusedAddress(f"{host} resolves to no address")
    return addresses


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the checked address of the host asked for; TLS still names the host (httpcore
    passes the origin's host name as SNI and the request keeps its Host header)."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self.networks = networks
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        with anyio.fail_after(timeout):
            addresses = await resolve_checked(host, port, self.networks)
        for address in addresses[:-1]:  # each in turn (localhost may be ::1 first, served on 127.0.0.1 only)
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError:
                continue
        return await self.inner.connect_tcp(addresses[-1], port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def client(networks: Sequence[Network]) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx takes no network backend: its pool is replaced by one with the pinning backend
    transport._pool = httpcore.AsyncConnectionPool(ssl_context=httpx.create_ssl_context(), max_connections=CONNECTIONS,
                                                   network_backend=PinnedBackend(networks))
    return httpx.AsyncClient(transport=transport, timeout=TIMEOUT, follow_redirects=False, trust_env=False)


def standard_key(secret: str) -> bytes:
    """The Standard Webhooks signing key: a ``whsec_`` secret's base64 bytes, another secret's
    own bytes (a partner's secret need not be base64)."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except ValueError:
            pass
    return secret.encode()


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes, *,
                   previous_secret: str | None = None) -> dict[str, str]:
    """``X-Smartsupp-Hmac`` (hex HMAC-SHA256 of the body, the secret's bytes as the key) and
    the Standard Webhooks ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``. While a
    rotation's grace lasts (``previous_secret``), the old secret signs too: a second
    ``v1,`` signature in ``webhook-signature`` (the standard's way) and
    ``X-Smartsupp-Hmac-Previous``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    signatures = [secret] if previous_secret is None else [secret, previous_secret]
    headers = {
        "content-type": "application/json",
        "user-agent": "opensupp-webhooks",
        "accept-encoding": "identity",  # the excerpt read is the bytes received, never a decompressed bomb
        "x-smartsupp-hmac": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            "v1," + base64.b64encode(hmac.new(standard_key(key), signed, hashlib.sha256).digest()).decode()
            for key in signatures
        ),
    }
    if previous_secret is not None:
        headers["x-smartsupp-hmac-previous"] = hmac.new(previous_secret.encode(), body, hashlib.sha256).hexdigest()
    return headers


@dataclass(slots=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    response: str | None = None
    retry_after: int | None = None
    permanent: bool = False  # a refusal for good (an SMTP 5xx to the recipient): failed at once, not retried


def _retry_after(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None  # an HTTP date is not honoured: the schedule decides
    return int(value.strip())


async def send(http: httpx.AsyncClient, url: str, headers: dict[str, str], body: bytes,
               deadline: float = ATTEMPT_SECONDS) -> Outcome:
    """POST ``body``; a 2xx within ``deadline`` seconds is delivered, anything else (a redirect
    too) is not."""
    try:
        async with asyncio.timeout(deadline), http.stream("POST", url, content=body, headers=headers) as response:
            excerpt = await _read_at_most(response, MAX_RESPONSE)
    except TimeoutError:
        return Outcome(False, error=f"no whole answer within {deadline:g} s")
    except Exception as exc:  # whatever the URL or the receiver did (InvalidURL, a timeout, a bad IDNA name)
        refused = _refusal(exc)
        return Outcome(False, error=str(refused) if refused else f"{type(exc).__name__}: {exc}")
    text = excerpt.decode("utf-8", "replace")
    ok = 200 <= response.status_code < 300
    return Outcome(ok, response.status_code, None if ok else f"HTTP {response.status_code}", text,
                   _retry_after(response.headers.get("retry-after")))


def _refusal(exc: BaseException | None) -> BaseException | None:
    while exc is not None:
        if isinstance(exc, RefusedAddress):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])
