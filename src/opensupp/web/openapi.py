"""The OpenAPI document, generated from the route declarations and their pydantic models.

OpenAPI 3.0.3, so that the bundled Swagger UI (served at /docs, no CDN needed) renders it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from opensupp import __version__
from opensupp.web.pagination import CURSOR_PATTERN, MAX_LIMIT
from opensupp.web.routing import Route

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
  `"1"`, `"0"`. Unknown body fields are refused, naming the field.
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
        "error": {"type": "string", "example": "ValidationError"},
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


def to_openapi30(schema: Any) -> Any:
    """Pydantic's JSON Schema into OpenAPI 3.0: ``anyOf [X, null]`` becomes nullable X."""
    if isinstance(schema, list):
        return [to_openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: to_openapi30(v) for k, v in schema.items() if k not in ("const",)}
    if "const" in schema:
        out["enum"] = [schema["const"]]
    any_of = out.get("anyOf")
    if any_of and {"type": "null"} in any_of:
        rest = [s for s in any_of if s != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1:
            out.update(rest[0])
        else:
            out["anyOf"] = rest
        out["nullable"] = True
    if out.get("default", 0) is None:
        del out["default"]
    if "examples" in out and isinstance(out["examples"], list):
        out["example"] = out.pop("examples")[0]
    return out


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, str]:
        name = model.__name__
        if name not in self.components:
            schema = model.model_json_schema(ref_template=REF, mode=mode)
            for sub, definition in schema.pop("$defs", {}).items():
                self.components.setdefault(sub, to_openapi30(definition))
            self.components[name] = to_openapi30(schema)
        return {"$ref": REF.format(model=name)}

    def page(self, model: type[BaseModel]) -> dict[str, str]:
        name = model.__name__.removesuffix("Out") + "Page"
        self.components[name] = {
            "type": "object",
            "required": ["records", "next"],
            "additionalProperties": False,
            "properties": {
                "records": {"type": "array", "items": self.ref(model, "serialization")},
                "next": {"type": "string", "nullable": True, "description": "Pass as `after` for the next page; null on the last page."},
            },
        }
        return {"$ref": REF.format(model=name)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}


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
    params += route.query
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
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    for route in routes:
        if route.raw:
            continue
        item = paths.setdefault(route.path, {})
        for method in route.methods:
            item[method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.0.3",
        "info": {"title": "opensupp partner API", "version": __version__, "description": DESCRIPTION},
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
