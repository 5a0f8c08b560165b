"""The OpenAPI document, generated from the route declarations and their pydantic models.

OpenAPI 3.1: its schemas are JSON Schema 2020-12, what pydantic generates, so a model's
schema goes in nearly as it is (see ``to_openapi31``). Rendered at /docs by the Swagger UI
vendored in ``web/docs_assets`` (served by this process: no CDN).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from opensupp import __version__
from opensupp.web.pagination import CURSOR_PATTERN, MAX_LIMIT
from opensupp.web.routing import Route

OPENAPI_VERSION = "3.1.0"
#: the schemas' dialect, OpenAPI 3.1's default (JSON Schema 2020-12 and OpenAPI's own keywords), said outright
DIALECT = "https://spec.openapis.org/oas/3.1/dialect/base"
ID_PATTERN = "^[1-9][0-9]{0,17}$"
REF = "#/components/schemas/{model}"

DESCRIPTION = """\
The Smartsupp partner REST API, served by opensupp. Existing clients (the official PHP
wrapper among them) work by changing their base URL.

* Only GET and POST. POST creates or updates and takes a JSON object; a GET to a `create`
  or `update` path counts as a POST with an empty body (the PHP wrapper sends one when it
  has no parameters). An empty body counts as `{}`.
* Every path works with or without a trailing slash, and with a doubled leading slash;
  there are no redirects. Ids are canonical decimal strings.
* Authenticate with the `apiKey` header (any case) or query parameter.
* Numbers may be sent as decimal strings (`"60"`) and booleans as `"true"`, `"false"`,
  `"1"`, `"0"`. Unknown body fields are refused, naming the field. An integer is written
  without a fraction: `2.0` is refused like `2.5`, though JSON Schema counts it an integer.
* Lists answer `{"records", "next"}`, oldest first; pass `next` back as `after`. Query
  parameters other than `apiKey` and those an operation lists are ignored.
* Every create takes an `Idempotency-Key` header (1 to 255 printable ASCII characters);
  the same key with the same body within 24 hours replays the first answer (with the
  header `Idempotent-Replayed: true`), with another body or path it is a 422.
* Errors are `{"error", "message"}`; validation errors add `errors: [{field, message}]`.
"""

ERRORS = {
    "400": "InvalidJSON or ValidationError",
    "401": "AuthError: apiKey missing or unknown",
    "404": "NotFound: no such path, or not one of this partner's resources",
    "405": "MethodNotAllowed (see the Allow header)",
    "408": "RequestTimeout: the request head or body did not arrive in time",
    "409": "Conflict: a unique value is taken, or the same Idempotency-Key is in flight",
    "413": "PayloadTooLarge: body over 1 MiB",
    "422": "IdempotencyMismatch: an Idempotency-Key reused with another body",
    "429": "RateLimited: over the key's rate, or too many failed authentications from this address "
           "(see the Retry-After header)",
    "431": "RequestHeaderFieldsTooLarge: the request line and headers are over 64 KiB",
    "500": "ServerError",
    "503": "ServiceUnavailable: the database cannot be reached, does not answer in time, or cannot write "
           "(see the Retry-After header)",
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "examples": ["ValidationError"]},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def to_openapi31(schema: Any) -> Any:
    """A schema as OpenAPI 3.1 writes it: JSON Schema 2020-12, which pydantic already speaks.

    ``anyOf [X, {"type": "null"}]`` for a plain X becomes ``"type": [X's type, "null"]`` (an
    ``enum`` gains ``null`` too, or a null would fail it), which renders and fuzzes more
    simply. OpenAPI 3.0 spellings that a route may still declare by hand are turned into
    their 2020-12 equivalents: ``nullable``, a single ``example`` and a boolean
    ``exclusiveMinimum``/``exclusiveMaximum``. Only subschemas are walked, never values
    (``default``, ``enum``, ``examples``) nor the names of ``properties``.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: to_openapi31(sub) for name, sub in value.items()}
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            out[key] = [to_openapi31(sub) for sub in value]
        elif key in _SUBSCHEMA:
            out[key] = to_openapi31(value)
        else:
            out[key] = value
    if "example" in out:
        out["examples"] = [out.pop("example"), *out.get("examples", [])]
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(out.get(exclusive), bool) and out.pop(exclusive) and bound in out:
            out[exclusive] = out.pop(bound)
    if out.pop("nullable", False):
        _allow_null(out)
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and _NULL in any_of:
        rest = [s for s in any_of if s != _NULL]
        if len(rest) == 1 and _plain(rest[0]) and not set(rest[0]) & (set(out) - {"anyOf"}):
            del out["anyOf"]
            out.update(rest[0])
            _allow_null(out)
    if "default" in out and out["default"] is None and not _accepts_null(out):
        del out["default"]  # pydantic's "absent" (a partial update's unchanged field), not a null
    return out


_NULL = {"type": "null"}
_SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
_SUBSCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SUBSCHEMA = frozenset({"items", "additionalProperties", "not", "contains", "if", "then", "else",
                        "propertyNames", "unevaluatedItems", "unevaluatedProperties"})
# keywords that describe a schema without constraining it
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "readOnly", "writeOnly", "deprecated"})
# keywords that only constrain values of the schema's own type(s), so "null" added to its
# type leaves them meaning what they meant
_PLAIN_KEYWORDS = _ANNOTATIONS | {
    "type", "enum", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "items", "minItems", "maxItems", "uniqueItems",
    "properties", "required", "additionalProperties", "minProperties", "maxProperties",
}


def _plain(schema: dict[str, Any]) -> bool:
    return isinstance(schema.get("type"), str | list) and set(schema) <= _PLAIN_KEYWORDS | {"const"}


def _accepts_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind is not None:
        return kind == "null" or (isinstance(kind, list) and "null" in kind)
    branches = schema.get("anyOf", []) + schema.get("oneOf", [])
    return not branches or any(b == _NULL or _accepts_null(b) for b in branches)


def _allow_null(schema: dict[str, Any]) -> None:
    """Let ``schema`` also accept null: in its type when it is a plain one, else as a branch."""
    if _plain(schema):
        kind = schema["type"]
        types = [kind] if isinstance(kind, str) else list(kind)
        schema["type"] = types if "null" in types else [*types, "null"]
        if "const" in schema:
            schema["enum"] = [schema.pop("const")]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
    elif _NULL not in schema.get("anyOf", ()):
        # a $ref, a combination: kept whole as one branch of two, its annotations outside
        inner = {k: schema.pop(k) for k in list(schema) if k not in _ANNOTATIONS}
        schema["anyOf"] = [inner, _NULL]


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, str]:
        name = model.__name__
        if name not in self.components:
            schema = model.model_json_schema(ref_template=REF, mode=mode)
            for sub, definition in schema.pop("$defs", {}).items():
                self.components.setdefault(sub, to_openapi31(definition))
            self.components[name] = to_openapi31(schema)
        return {"$ref": REF.format(model=name)}

    def page(self, model: type[BaseModel]) -> dict[str, str]:
        name = model.__name__.removesuffix("Out") + "Page"
        self.components[name] = {
            "type": "object",
            "required": ["records", "next"],
            "additionalProperties": False,
            "properties": {
                "records": {"type": "array", "items": self.ref(model, "serialization")},
                "next": {"type": ["string", "null"],
                         "description": "Pass as `after` for the next page; null on the last page."},
            },
        }
        return {"$ref": REF.format(model=name)}


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": REF.format(model="Error")}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        op["description"] = route.description
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": ID_PATTERN}}
        for name in route.params
    ]
    if route.verb == "list":
        params += [
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": MAX_LIMIT}},
            {"name": "after", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": CURSOR_PATTERN}, "description": "The previous page's `next`."},
        ]
    params += [{**param, "schema": to_openapi31(param["schema"])} for param in route.query]
    if route.verb == "create":
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"}})
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": route.verb in ("create", "batch"),
            "content": {"application/json": {"schema": schemas.ref(route.body, "validation")}},
        }
    responses: dict[str, Any] = {}
    if route.verb == "delete":
        responses["204"] = {"description": "Deleted."}
    elif route.response is not None:
        schema = schemas.page(route.response) if route.verb == "list" else schemas.ref(route.response, "serialization")
        responses["200"] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
    codes = ["404", "405", "500"]
    if not route.public:
        codes += ["401", "408", "413", "429", "431"]
    if route.body is not None or route.verb == "list" or route.query:
        codes.append("400")
    if route.verb == "create":
        codes += ["409", "422"]
    if route.verb == "update":
        codes.append("409")
    if route.handler.__name__ != "healthz":  # every other route uses the database
        codes.append("503")
    for code in sorted(set(codes)):
        responses[code] = _error(ERRORS[code])
    op["responses"] = responses
    if route.public:
        op["security"] = []
    return op


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    """The document for ``routes`` (all but the raw ones: the docs pages and this document)."""
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    for route in routes:
        if route.raw:
            continue
        item = paths.setdefault(route.path, {})
        for method in route.methods:
            item[method.lower()] = _operation(route, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": DIALECT,
        "info": {
            "title": "opensupp partner API",
            "version": __version__,
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "apiKey"},
                "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "apiKey"},
            },
        },
        "security": [{"apiKeyHeader": []}, {"apiKeyQuery": []}],
    }
