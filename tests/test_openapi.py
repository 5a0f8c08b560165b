"""The OpenAPI document (3.1, valid against the official schema, in correct English) and
/docs, and schemathesis fuzzing every operation in it."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator import validate as validate_spec
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import cli_key, start_server, stop_server
from opensupp.app import ROUTERS
from opensupp.web.english import article, plural, with_article
from opensupp.web.openapi import build_openapi, to_openapi31
from opensupp.web.routing import RouteTable

EXAMPLES = 25
# Operations whose validity the schema cannot fully state (cross-field rules: sorted,
# non-overlapping intervals; URLs that must not point inside a network), so a
# schema-valid request may rightly be a 400. Every other check still runs on them.
SEMANTIC = {("POST", "/accounts/{aid}/officehours/update"), ("POST", "/accounts/{aid}/hooks/create"),
            ("POST", "/accounts/{aid}/hooks/{id}/update")}


def _whole_float(value: Any) -> bool:
    """Whether a body holds a number like ``2.0``: JSON Schema 2020-12 (so OpenAPI 3.1, and
    schemathesis since 4.27) counts it an integer, this server refuses it where an integer is
    expected, as it refuses ``1.5`` (docs/API.md, "Field types"; the document's description
    says so), and no schema can tell ``2.0`` from ``2``."""
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_whole_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_whole_float(v) for v in value)
    return False


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
            semantic = (case.method, case.path) in SEMANTIC
            excluded = [positive_data_acceptance] if semantic or _whole_float(case.body) else []
            case.call_and_validate(headers={"apiKey": fuzzed_server.key}, excluded_checks=excluded)

        check()
    assert "Traceback" not in fuzzed_server.log_text()


def test_document_covers_every_route(fuzzed_server):
    doc = httpx.get(fuzzed_server.url + "/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
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
    """The page names its assets by a hash of their content, so each may be cached for a year."""
    page = httpx.get(fuzzed_server.url + "/docs")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache" and page.headers["etag"]
    assets = re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text)
    assert len(assets) == 3
    for url, kind in zip(sorted(assets), ["image/png", "javascript", "css"], strict=True):
        r = httpx.get(fuzzed_server.url + url)
        assert r.status_code == 200 and kind in r.headers["content-type"] and len(r.content) > 500, url
        digest = hashlib.sha256(r.content).hexdigest()[:16]
        assert f".{digest}." in url and r.headers["etag"] == f'"{digest}"'
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(fuzzed_server.url + "/docs/swagger-ui-bundle.0000000000000000.js").status_code in (401, 404)


def test_health_needs_no_key(fuzzed_server):
    assert httpx.get(fuzzed_server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(fuzzed_server.url + "/readyz").json() == {"status": "ok"}


# --------------------------------------------------------------------------- OpenAPI 3.1


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_openapi(RouteTable(ROUTERS).routes)


_MAPS = ("properties", "patternProperties", "$defs", "schemas")
_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")


def _schemas(node: Any, in_schema: bool = False) -> Any:
    """Every schema object in the document (components, parameters, bodies, responses, nested)."""
    if isinstance(node, list):
        for value in node:
            yield from _schemas(value, in_schema)
        return
    if not isinstance(node, dict):
        return
    if in_schema:
        yield node
        for key, value in node.items():
            if key in _MAPS and isinstance(value, dict):
                for sub in value.values():
                    yield from _schemas(sub, True)
            elif key in _ONE and isinstance(value, dict) or key in _MANY:
                yield from _schemas(value, True)
        return
    for key, value in node.items():
        if key == "schema":
            yield from _schemas(value, True)
        elif key == "schemas":
            for sub in value.values():
                yield from _schemas(sub, True)
        else:
            yield from _schemas(value, False)


def test_document_is_valid_openapi_31(document):
    assert document["openapi"] == "3.1.0"
    validate_spec(document)  # the official OpenAPI 3.1 schema, picked by the version field
    assert list(OpenAPIV31SpecValidator(document).iter_errors()) == []


def test_schemas_are_json_schema_2020_12_with_no_openapi_30_spellings(document):
    schemas = list(_schemas(document))
    assert len(schemas) > 200
    for schema in schemas:
        Draft202012Validator.check_schema(schema)
        assert "nullable" not in schema and "example" not in schema, schema
        assert not isinstance(schema.get("exclusiveMinimum"), bool), schema
        assert not isinstance(schema.get("exclusiveMaximum"), bool), schema
        assert "examples" not in schema or isinstance(schema["examples"], list), schema
        if "default" in schema and schema["default"] is None and "$ref" not in str(schema):
            # a null default is only said of a field that may be null
            assert Draft202012Validator(schema).is_valid(None), schema
    assert document["components"]["schemas"]["AccountPage"]["properties"]["next"]["type"] == ["string", "null"]


def test_nullable_values_validate_as_the_server_answers(document):
    """A null where the server answers one (the last page's `next`, a status that never
    changes) validates; a null where it never answers one does not."""
    components = document["components"]["schemas"]

    def validator(name: str) -> Draft202012Validator:
        return Draft202012Validator({**components[name], "components": {"schemas": components}})

    assert validator("AccountPage").is_valid({"records": [], "next": None})
    assert not validator("AccountPage").is_valid({"records": [], "next": 5})
    assert not validator("AccountCreate").is_valid({"title": None, "lang": "en"})
    status = components["OfficeHoursStatusOut"]
    assert "null" in status["properties"]["next_change"]["type"]


def test_openapi_30_spellings_become_2020_12():
    assert to_openapi31({"type": "string", "nullable": True, "example": "x"}) == {
        "type": ["string", "null"], "examples": ["x"]}
    assert to_openapi31({"type": "string", "enum": ["a", "b"], "nullable": True}) == {
        "type": ["string", "null"], "enum": ["a", "b", None]}
    assert to_openapi31({"type": "integer", "minimum": 0, "exclusiveMinimum": True}) == {
        "type": "integer", "exclusiveMinimum": 0}
    assert to_openapi31({"type": "integer", "minimum": 0, "exclusiveMinimum": False}) == {
        "type": "integer", "minimum": 0}
    # a $ref cannot take "null" in a type: it becomes one branch of two, its description outside
    assert to_openapi31({"$ref": "#/components/schemas/X", "nullable": True, "description": "d"}) == {
        "description": "d", "anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]}
    # pydantic's Optional: a plain branch folds into a type array, and its null default stays true
    assert to_openapi31({"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "default": None}) == {
        "type": ["string", "null"], "maxLength": 3, "default": None}
    # ...a $ref branch stays an anyOf; a "default: null" on a field that cannot be null is dropped
    ref = {"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}], "default": None}
    assert to_openapi31(ref) == ref
    assert to_openapi31({"type": "string", "default": None}) == {"type": "string"}
    # nested schemas are walked, but never a property's name nor a value
    assert to_openapi31({"type": "object", "properties": {"example": {"type": "integer", "example": 1}},
                         "default": {"example": 2}}) == {
        "type": "object", "properties": {"example": {"type": "integer", "examples": [1]}}, "default": {"example": 2}}


# --------------------------------------------------------------------------- English


@pytest.mark.parametrize(("phrase", "expected"), [
    ("user", "a user"), ("account", "an account"), ("hour", "an hour"), ("hook", "a hook"),
    ("offline e-mail", "an offline e-mail"), ("offline email", "an offline email"), ("e-mail", "an e-mail"),
    ("trigger", "a trigger"), ("unique key", "a unique key"), ("unknown field", "an unknown field"),
    ("usual case", "a usual case"), ("umbrella", "an umbrella"), ("European", "a European"),
    ("one-off", "a one-off"), ("onerous task", "an onerous task"), ("honest answer", "an honest answer"),
    ("house", "a house"), ("SMS", "an SMS"), ("HTTP header", "an HTTP header"), ("URL", "a URL"),
    ("API key", "an API key"), ("JSON object", "a JSON object"), ("`apiKey`", "an `apiKey`"),
    ("8-hour day", "an 8-hour day"), ("18", "an 18"), ("11,000", "an 11,000"), ("1,100", "a 1,100"), ("7", "a 7"),
    ("Idempotency-Key header", "an Idempotency-Key header"), ("year", "a year"),
    ("http(s) URL", "an http(s) URL"), ("hint", "a hint"), ("id", "an id"), ("idea", "an idea"),
])
def test_article_by_sound(phrase, expected):
    assert with_article(phrase) == expected


@pytest.mark.parametrize(("noun", "expected"), [
    ("user", "users"), ("offline email", "offline emails"), ("hook", "hooks"), ("trigger", "triggers"),
    ("address", "addresses"), ("batch", "batches"), ("entry", "entries"), ("key", "keys"), ("person", "people"),
    ("office hours", "office hours"),
])
def test_plural(noun, expected):
    assert plural(noun) == expected


def _texts(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("summary", "description") and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _texts(value)


def test_every_generated_text_chooses_its_article_by_sound(document):
    """Every "a X" / "an X" in a summary or description, the models' field docs included."""
    wrong = []
    texts = list(_texts(document))
    assert len(texts) > 100
    for text in texts:
        prose = text.replace("`", "")  # "an `id`": the word inside the code span is what is said
        for match in re.finditer(r"(?<![\w.'-])([Aa]n?) ([\w'][\w'-]*)", prose):
            if match.group(1).lower() != article(match.group(2)):
                wrong.append(f"{match.group()!r} in {text[:100]!r}")
    assert wrong == []


def test_resource_summaries_read_as_english(document):
    ops = {op["operationId"]: op for item in document["paths"].values() for op in item.values()}
    assert ops["create_user"]["summary"] == "Create a user"
    assert ops["get_user"]["summary"] == "Get a user"
    assert ops["update_user"]["summary"] == "Update a user"
    assert ops["create_account"]["summary"] == "Create an account"
    assert ops["create_offline_email"]["summary"] == "Create an offline email"
    assert ops["list_offlineemails"]["summary"] == "List offline emails"
    assert ops["list_offlineemails"]["description"].startswith("The account's offline emails, oldest first.")
    assert ops["create_hook"]["summary"] == "Create a hook"
    # no path segment glued from two words ("offlineemails") stands in the prose
    for text in _texts(document):
        assert "offlineemails" not in text.replace("`", " ").split(" "), text
