"""Slow clients and too many of them, against a real server process (web/server.py):
heads and bodies that never finish, idle connections, and the connection cap."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.slow

TIMEOUT = 1.0  # the header and body timeouts these servers run with
SLACK = 9.0  # the server should take at most TIMEOUT + 1 s (two sweeps): the bounds are 5x that


@pytest.fixture
def strict(database_url: str, tmp_path) -> Iterator[LiveServer]:
    server = start_server(database_url, tmp_path, env={
        "OPENSUPP_HEADER_TIMEOUT": str(TIMEOUT), "OPENSUPP_BODY_TIMEOUT": str(TIMEOUT),
        "OPENSUPP_KEEPALIVE_TIMEOUT": "0.5"})
    try:
        yield server
    finally:
        stop_server(server)


def connect(server: LiveServer) -> socket.socket:
    url = urlsplit(server.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=5)
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket, into: bytearray) -> bool:
    """Read what has come; True once the server has closed the connection."""
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return False
        except ConnectionError:
            return True
        if not data:
            return True
        into += data


def send(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(BlockingIOError, ConnectionError):  # closed by the server: drain() says so
        sock.send(data)


def wait_closed(socks: list[socket.socket], bound: float, trickle: dict[int, bytes] | None = None,
                every: float = 0.5) -> tuple[list[bytearray], set[int], float]:
    """Until each socket is closed by the server or ``bound`` seconds pass, sending
    ``trickle[i]`` on socket i every ``every`` seconds: what each received, the ones still
    open, and when the last one closed."""
    received = [bytearray() for _ in socks]
    still_open = set(range(len(socks)))
    started = last = time.monotonic()
    while still_open and time.monotonic() - started < bound:
        for i in list(still_open):
            if trickle and i in trickle:
                send(socks[i], trickle[i])
            if drain(socks[i], received[i]):
                still_open.discard(i)
                last = time.monotonic()
        time.sleep(every)
    return received, still_open, last - started


def test_slowloris_connections_are_closed_while_others_are_served(strict):
    socks = [connect(strict) for _ in range(20)]
    for sock in socks[:15]:  # 15 heads begun and trickled; 5 connections that send nothing
        send(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    trickle = {i: f"X-Slow-{i}: 1\r\n".encode() for i in range(15)}
    started = time.monotonic()
    with httpx.Client(base_url=strict.url) as client:
        normal = client.get("/healthz")
        normal_took = time.monotonic() - started
    received, still_open, took = wait_closed(socks, TIMEOUT + SLACK, trickle)
    assert not still_open, f"{len(still_open)} of 20 slow connections still open after {TIMEOUT + SLACK} s"
    assert normal.status_code == 200 and normal_took < 2
    for answer in received[:15]:  # a head begun: told why
        head, _, body = bytes(answer).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert json.loads(body) == {"error": "RequestTimeout",
                                    "message": f"The request head did not arrive within {TIMEOUT:g} s."}
    assert all(not answer for answer in received[15:])  # nothing sent: just closed
    for sock in socks:
        sock.close()


def test_a_trickled_body_gets_408(strict):
    sock = connect(strict)
    send(sock, b"POST /accounts/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100\r\n\r\n{")
    received, still_open, took = wait_closed([sock], TIMEOUT + SLACK, {0: b" "}, every=0.2)
    sock.close()
    assert not still_open
    head, _, body = bytes(received[0]).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {"error": "RequestTimeout",
                                "message": f"The request body did not arrive within {TIMEOUT:g} s."}
    assert '"POST /accounts/create" 408' in strict.log_after('"POST /accounts/create" 408')


def test_an_unread_body_trickling_after_the_answer_is_cut(strict):
    sock = connect(strict)
    send(sock, b"POST /accounts/create HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{")
    received, still_open, took = wait_closed([sock], TIMEOUT + SLACK, {0: b" "}, every=0.2)
    sock.close()
    assert not still_open
    assert bytes(received[0]).startswith(b"HTTP/1.1 413 ")


def test_idle_keepalive_connections_are_closed(strict):
    sock = connect(strict)
    send(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    received, still_open, took = wait_closed([sock], 4.0, every=0.05)  # 0.5 s; uvicorn's default: 5 s
    sock.close()
    assert not still_open
    assert bytes(received[0]).startswith(b"HTTP/1.1 200 ")


def test_connections_over_the_cap_are_refused_until_some_close(database_url, tmp_path):
    cap = 4
    server = start_server(database_url, tmp_path, env={
        "OPENSUPP_MAX_CONNECTIONS": str(cap), "OPENSUPP_KEEPALIVE_TIMEOUT": "60", "OPENSUPP_HEADER_TIMEOUT": "60"})
    try:
        time.sleep(0.2)  # the start-up check's connection is gone
        held = [connect(server) for _ in range(cap)]
        for sock in held:  # each answered, so each is open and counted
            sock.setblocking(True)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        refused = [httpx.get(server.url + "/healthz") for _ in range(3)]
        for r in refused:
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"] == "ServiceUnavailable"
            assert "too many open connections" in r.json()["message"]
        for sock in held:
            sock.close()
        deadline = time.monotonic() + SLACK
        while (status := httpx.get(server.url + "/healthz").status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200
        log = server.log_after("accepting connections again")
        assert log.count("refusing new ones") == 1  # once per streak, not per connection
        assert "accepting connections again, after refusing" in log
    finally:
        stop_server(server)


def test_a_request_head_over_64_kib_is_refused_with_431(strict: LiveServer) -> None:
    """uvicorn reads a head whole however large (a header of 10 MB was read, kept and
    handed on): once a head passes 64 KiB (counted a chunk read at a time) the server
    answers 431 and closes the connection."""
    sock = connect(strict)
    answer = bytearray()
    send(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent, closed = 0, False
    while not closed and not answer and sent < 1024 * 1024:  # 8 KiB at a time, as a slow client would
        send(sock, b"a" * 8192)
        sent += 8192
        time.sleep(0.01)
        closed = drain(sock, answer)
    deadline = time.monotonic() + 5
    while not closed and time.monotonic() < deadline:
        time.sleep(0.01)
        closed = drain(sock, answer)
    sock.close()
    head, _, body = bytes(answer).partition(b"\r\n\r\n")
    assert closed and head.startswith(b"HTTP/1.1 431 "), (sent, head)
    assert sent < 128 * 1024  # cut off about where it passed the bound, not at the end
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"] == "RequestHeaderFieldsTooLarge"
    fits = httpx.get(strict.url + "/healthz", headers={"X-Big": "a" * (60 * 1024)}, timeout=5)
    assert fits.status_code == 200  # a large head within the bound is read as before
