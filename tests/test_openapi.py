"""The OpenAPI document and /docs, and schemathesis fuzzing every operation in it."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import cli_key, start_server, stop_server

EXAMPLES = 25
# Operations whose validity the schema cannot fully state (cross-field rules: sorted,
# non-overlapping intervals; URLs that must not point inside a network), so a
# schema-valid request may rightly be a 400. Every other check still runs on them.
SEMANTIC = {("POST", "/accounts/{aid}/officehours/update"), ("POST", "/accounts/{aid}/hooks/create"),
            ("POST", "/accounts/{aid}/hooks/{id}/update")}


@pytest.fixture(scope="module")
def fuzzed_server(database_url, tmp_path_factory):
    import os

    env = {**os.environ, "OPENSUPP_DATABASE_URL": database_url}
    # schemathesis sends hundreds of bad keys from one address and wants a 401 for each; the
    # failure budget that turns them into 429s after 30 is tested in test_auth.py
    server = start_server(database_url, tmp_path_factory.mktemp("fuzz"), env={"OPENSUPP_AUTH_FAILURES_PER_MINUTE": "0"})
    server.key = cli_key(env)
    # something to find: an account, so get/update/delete are not all 404s
    httpx.post(server.url + "/accounts/create", json={"title": "seed", "lang": "en"}, headers={"apiKey": server.key})
    yield server
    stop_server(server)


def test_every_operation_conforms(fuzzed_server):
    """No response >= 500, and every response (status, headers, body) matches the spec.

    Driven through hypothesis directly rather than schemathesis' pytest plugin, so the
    operations run against the server this module started.
    """
    schema = schemathesis.openapi.from_url(fuzzed_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            # Reusing a random Idempotency-Key with another body is a correct 422, which
            # schemathesis would count as "valid data rejected"; test_idempotency covers it.
            if case.headers:
                case.headers.pop("Idempotency-Key", None)
            excluded = [positive_data_acceptance] if (case.method, case.path) in SEMANTIC else []
            case.call_and_validate(headers={"apiKey": fuzzed_server.key}, excluded_checks=excluded)

        check()
    assert "Traceback" not in fuzzed_server.log_text()


def test_document_covers_every_route(fuzzed_server):
    doc = httpx.get(fuzzed_server.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert {
        ("GET", "/test"), ("GET", "/accounts"), ("POST", "/accounts/create"), ("GET", "/accounts/{aid}/get"),
        ("POST", "/accounts/{aid}/update"), ("GET", "/accounts/{aid}/delete"), ("GET", "/healthz"), ("GET", "/readyz"),
    } <= ops
    create = doc["paths"]["/accounts/create"]["post"]
    assert {"400", "401", "413", "422"} <= set(create["responses"])
    assert doc["components"]["schemas"]["AccountCreate"]["additionalProperties"] is False


def test_the_text_pattern_and_the_server_agree_where_regex_dialects_differ(fuzzed_server):
    """U+0085 is whitespace to Python's \\s but not to ECMA-262's, U+FEFF the other way round: the
    documented pattern spells its class out, so fuzzers, clients and the server agree."""
    import re

    doc = httpx.get(fuzzed_server.url + "/openapi.json").json()
    pattern = doc["components"]["schemas"]["AccountCreate"]["properties"]["title"]["pattern"]
    assert "\\s" not in pattern
    headers = {"apiKey": fuzzed_server.key}
    for title in ("\u0085", "\u3000\u00a0", "\ufeff", "a\u0085", " x "):
        r = httpx.post(fuzzed_server.url + "/accounts/create", json={"title": title, "lang": "en"}, headers=headers)
        assert (r.status_code == 200) == bool(re.search(pattern, title)), (title, r.text)


def test_docs_page_and_assets_load(fuzzed_server):
    page = httpx.get(fuzzed_server.url + "/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    for asset, kind in [("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")]:
        r = httpx.get(f"{fuzzed_server.url}/docs/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"] and len(r.content) > 1000


def test_health_needs_no_key(fuzzed_server):
    assert httpx.get(fuzzed_server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(fuzzed_server.url + "/readyz").json() == {"status": "ok"}
