"""Operations: the request id, JSON logs, logger names, /metrics, and the access log
written whole when the server stops."""

from __future__ import annotations

import io
import json
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conftest import client_for, new_key, start_server
from opensupp.app import create_app
from opensupp.config import Settings

pytestmark = pytest.mark.anyio

GENERATED = re.compile(r"[0-9a-f]{17,}")


@pytest.fixture
async def ops(database_url: str, tmp_path: Any) -> AsyncIterator[Any]:
    application = create_app(Settings(database_url=database_url, data_dir=tmp_path, test_routes=True,
                                      key_cache_seconds=0))
    await application.startup()
    application.access.stream = io.StringIO()
    try:
        yield application
    finally:
        await application.shutdown()


# --------------------------------------------------------------------------- X-Request-Id


async def test_every_answer_has_a_request_id_and_its_access_line_too(ops):
    key = await new_key(ops)
    async with client_for(ops) as c:
        answers = [await c.get("/accounts/", headers={"apiKey": key}), await c.get("/accounts/"),
                   await c.post("/accounts/create", content=b"{", headers={"apiKey": key}),
                   await c.get("/"), await c.get("/nope"), await c.get("/static/site.css"), await c.get("/healthz")]
    assert [r.status_code for r in answers] == [200, 401, 400, 200, 404, 200, 200]
    ids = [r.headers["x-request-id"] for r in answers]
    assert all(GENERATED.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    ops.access.flush()
    lines = ops.access.stream.getvalue().splitlines()
    assert [line.rsplit(" id=", 1)[1] for line in lines] == ids


async def test_a_clients_request_id_is_kept_when_it_is_safe(ops):
    async with client_for(ops) as c:
        for given in ("abc-123", "x" * 128, "a:b/c=d+e_f.g~!", "trace;id=7"):
            for path in ("/healthz", "/"):
                assert (await c.get(path, headers={"x-request-id": given})).headers["x-request-id"] == given
        for given in ("", "x" * 129, "a b", 'a"b', "a\\b", "é"):
            r = await c.get("/healthz", headers={"x-request-id": given.encode("latin-1")})
            assert GENERATED.fullmatch(r.headers["x-request-id"]), given


async def test_a_batchs_calls_answer_under_the_batchs_request_id(ops):
    key = await new_key(ops)
    async with client_for(ops, key) as c:
        r = await c.post("/batch", json={"requests": [{"method": "GET", "url": "/accounts/"}] * 2},
                         headers={"x-request-id": "batch-1"})
    assert r.headers["x-request-id"] == "batch-1"
    ops.access.flush()
    lines = ops.access.stream.getvalue().splitlines()
    assert len(lines) == 3 and all(line.endswith(" id=batch-1") for line in lines)


# --------------------------------------------------------------------------- /metrics


async def test_metrics_count_requests_by_route_template_and_status(ops):
    key = await new_key(ops)
    async with client_for(ops) as c:
        created = (await c.post("/accounts/create", json={"title": "m", "lang": "en"}, headers={"apiKey": key})).json()
        for _ in range(3):
            await c.get(f"/accounts/{created['id']}/get", headers={"apiKey": key})
        await c.get("/accounts/999999/get", headers={"apiKey": key})
        await c.get("/accounts/x/nope")
        await c.get("/accounts/")
        await c.get("/")
        await c.get("/nope")
        r = await c.get("/metrics")  # no key needed
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'opensupp_http_requests_total{route="/accounts/{aid}/get",status="200"} 3.0' in text
    assert 'opensupp_http_requests_total{route="/accounts/{aid}/get",status="404"} 1.0' in text
    assert 'opensupp_http_requests_total{route="/accounts/create",status="200"} 1.0' in text
    assert 'opensupp_http_requests_total{route="(unmatched)",status="401"} 1.0' in text
    assert 'opensupp_http_requests_total{route="/accounts",status="401"} 1.0' in text
    assert 'opensupp_http_requests_total{route="/",status="200"} 1.0' in text
    assert 'opensupp_http_requests_total{route="(unmatched)",status="404"} 1.0' in text
    assert 'opensupp_http_request_duration_seconds_count{route="/accounts/{aid}/get"} 4.0' in text
    assert 'opensupp_http_request_duration_seconds_bucket{le="+Inf",route="/accounts/{aid}/get"} 4.0' in text
    assert "opensupp_http_request_duration_seconds_sum" in text
    if ops.db.__class__.__name__ == "PostgresDatabase":
        assert "opensupp_db_pool_size 25.0" in text or "opensupp_db_pool_size 10.0" in text
        assert "opensupp_db_pool_connections " in text and "opensupp_db_pool_busy " in text
    async with client_for(ops) as c:
        assert "/metrics" not in (await c.get("/openapi.json")).json()["paths"]


async def test_each_app_counts_alone(ops, database_url, tmp_path):
    other = create_app(Settings(database_url=database_url, data_dir=tmp_path))
    await other.startup()
    try:
        async with client_for(other) as c:
            await c.get("/healthz")
            assert 'route="/healthz",status="200"} 1.0' in (await c.get("/metrics")).text
        async with client_for(ops) as c:
            assert 'route="/healthz"' not in (await c.get("/metrics")).text
    finally:
        await other.shutdown()


async def test_metrics_can_be_turned_off(database_url, tmp_path):
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path, metrics=False))
    await app.startup()
    try:
        async with client_for(app) as c:
            assert (await c.get("/metrics")).status_code == 404
    finally:
        await app.shutdown()


# --------------------------------------------------------------------------- logs of a real server


def stopped(server: Any) -> str:
    """The server's output once it has stopped on SIGTERM (as an orchestrator stops it)."""
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once stopped
    return server.log_text()


@pytest.mark.slow
def test_json_logs_carry_the_request_id_in_every_line(database_url, tmp_path):
    server = start_server(database_url, tmp_path, env={"OPENSUPP_LOG_FORMAT": "json", "OPENSUPP_TEST_ROUTES": "1",
                                                       "OPENSUPP_DATA_DIR": str(tmp_path)})
    try:
        ok = httpx.get(server.url + "/accounts/", headers={"x-request-id": "req-ok"})
        boom = httpx.get(server.url + "/_test/boom", headers={"x-request-id": "req-boom"})
    finally:
        log = stopped(server)
    assert ok.status_code == 401 and boom.status_code == 500
    assert boom.json()["error"] == "ServerError"
    records = [json.loads(line) for line in log.splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    assert all(r["logger"].startswith("opensupp.") for r in records), {r["logger"] for r in records}
    access = {r["request_id"]: r for r in records if r["logger"] == "opensupp.access"}
    assert access["req-ok"]["status"] == 401 and access["req-ok"]["path"] == "/accounts/"
    assert access["req-boom"]["status"] == 500
    [error] = [r for r in records if r["level"] == "ERROR"]
    assert error["request_id"] == "req-boom" and error["logger"] == "opensupp.site"
    assert "RuntimeError: a bug, on purpose" in error["exc_info"]
    assert any(r["message"].startswith("Uvicorn running on") and r["logger"] == "opensupp.server" for r in records)
    assert all("color_message" not in r for r in records)  # uvicorn's terminal colours stay out
    assert all(r["request_id"] is None for r in records if r["logger"] == "opensupp.server")


@pytest.mark.slow
def test_text_logs_name_opensupp_loggers_and_keep_every_access_line_at_sigterm(database_url, tmp_path):
    server = start_server(database_url, tmp_path, env={"OPENSUPP_DATA_DIR": str(tmp_path)})
    try:
        with httpx.Client(base_url=server.url) as c:
            ids = [c.get("/healthz", headers={"x-request-id": f"flush-{i}"}).headers["x-request-id"]
                   for i in range(200)]
    finally:
        log = stopped(server)  # at once: the last lines are still in the access log's buffer
    for request_id in ids:
        assert '"GET /healthz" 200 15 ' in log and f" id={request_id}\n" in log, request_id
    assert "uvicorn" not in log.replace("Uvicorn running", "")
    names = {m.group(1) for m in re.finditer(r"^\S+ \S+ [A-Z]+ (\S+): ", log, re.M)}
    assert names <= {"opensupp.server", "opensupp.access", "opensupp.site", "opensupp.web", "opensupp.db"}, names
    assert "opensupp.server" in names


# --------------------------------------------------------------------------- the request a handler sees


def test_a_request_carries_every_header_and_its_cookies():
    from opensupp.web.request import Request

    raw = [(b"apikey", b"k"), (b"x-tag", b"one"), (b"cookie", b"a=1; b=\"two\""), (b"x-tag", b"two"),
           (b"cookie", b"c=3; a=shadowed")]
    req = Request(None, "GET", "/test", b"", raw_headers=raw)  # type: ignore[arg-type]
    assert req.raw_headers is raw  # as received, not copied
    assert req.header("X-Tag") == "one"
    assert req.header_values("x-tag") == ["one", "two"]
    assert req.header("nope") is None
    # parsed as the web pages parse them (Starlette: of a repeated name, the last)
    from starlette.requests import HTTPConnection

    assert req.cookies == {"a": "shadowed", "b": "two", "c": "3"}
    assert req.cookies == HTTPConnection({"type": "http", "headers": raw}).cookies


# --------------------------------------------------------------------------- one lifespan for both


async def drive_lifespan(app: Any) -> list[dict[str, Any]]:
    """Start ``app`` through ASGI's lifespan protocol (as uvicorn does) and stop it when started."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.failed":
            incoming.clear()

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    return sent


async def test_one_lifespan_starts_and_stops_both(database_url, tmp_path):
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path))
    sent = await drive_lifespan(app)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not app.core._tasks  # the purge loop and the access log's writer ended


async def test_a_failing_start_of_the_pages_fails_the_server_and_stops_the_api(database_url, tmp_path):
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette

    from opensupp.web.front import Front

    @asynccontextmanager
    async def broken(app: Any) -> AsyncIterator[None]:
        raise RuntimeError("the pages cannot start")
        yield

    core = create_app(Settings(database_url=database_url, data_dir=tmp_path)).core
    sent = await drive_lifespan(Front(core, Starlette(lifespan=broken)))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "the pages cannot start" in sent[0]["message"]
    assert not core._tasks  # the API's core was stopped again


async def test_a_failing_start_of_the_api_fails_the_server(tmp_path):
    (tmp_path / "a-file").write_text("")  # the database would be in a directory that cannot be
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/a-file/x.db", data_dir=tmp_path))
    sent = await drive_lifespan(app)
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
