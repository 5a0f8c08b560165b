"""``POST /batch``: many API calls in one HTTP request (Microsoft Graph's JSON batching shape).

A partner creating thousands of accounts pays one HTTP round trip per account otherwise;
on a fast server that, not the database, is what limits a script. A batch carries up to
``MAX_REQUESTS`` calls, each answered as if it had come alone: the same route, the same
validation, its own unit of work, its own ``Idempotency-Key``, its own error. The batch
itself is authenticated once; each call counts against the rate limit.

The calls of one batch run concurrently, in no guaranteed order (as Graph's do without
``dependsOn``): send calls that depend on each other in separate batches. The answer
lists one response per call, in the order of the request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from opensupp.errors import FieldError
from opensupp.web.fields import Body
from opensupp.web.resources import Out
from opensupp.web.routing import Router

router = Router()
TAG = "Batch"
PATH = "/batch"
MAX_REQUESTS = 100
MAX_URL = 2000
#: the request headers a call may carry; the batch's apiKey is every call's
CALL_HEADERS = ("Idempotency-Key",)

CallHeaderMap = Annotated[
    dict[str, str] | None,
    WithJsonSchema({
        "type": "object", "nullable": True, "additionalProperties": False,
        "properties": {"Idempotency-Key": {"type": "string"}},
        "description": "Only `Idempotency-Key` (any case): the batch's apiKey is every call's. The key is "
                       "checked as on a single create, in the call's own response (400 there, not for the batch).",
    }),
]
CallBody = Annotated[
    dict[str, Any] | None,
    WithJsonSchema({"type": "object", "nullable": True, "description": "The call's JSON body (a POST's)."}),
]


class Call(Body):
    id: str = Field(None, min_length=1, max_length=64,
                    description="Echoed in the call's response; defaults to the call's index (\"0\", \"1\", ...).")
    method: Literal["GET", "POST"]
    url: str = Field(min_length=1, max_length=MAX_URL, pattern="^/",
                     description="The path (and query) as for a single call: `/accounts/create`, `/accounts/?limit=10`.")
    headers: CallHeaderMap = None
    body: CallBody = None


class BatchRequest(Body):
    requests: list[Call] = Field(min_length=1, max_length=MAX_REQUESTS)

    @classmethod
    def check_raw(cls, data: dict[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
        """Header names are case-insensitive, and only the ones a call may carry are known."""
        errors: list[FieldError] = []
        calls = data.get("requests")
        if isinstance(calls, list) and len(calls) <= MAX_REQUESTS:
            for i, call in enumerate(calls):
                headers = call.get("headers") if isinstance(call, dict) else None
                if not isinstance(headers, dict):
                    continue
                for name in headers:
                    if name.lower() not in _KNOWN_HEADERS:
                        errors.append(FieldError(f"requests[{i}].headers.{name}",
                                                 f"is not a header a call may carry (allowed: {', '.join(CALL_HEADERS)})"))
        return {}, errors


_KNOWN_HEADERS = {name.lower() for name in CALL_HEADERS}


def header(headers: dict[str, str] | None, name: str) -> str | None:
    """A call's header, by its name in any case."""
    if headers:
        for key, value in headers.items():
            if key.lower() == name:
                return value
    return None


class CallResponse(Out):
    id: str
    status: int = Field(description="The status the call would have had alone.")
    headers: dict[str, str] = Field(description="Its headers other than Content-Type (`Idempotent-Replayed`, "
                                                "`Retry-After`, `Allow`).")
    body: Annotated[Any, WithJsonSchema({"description": "Its JSON answer; null for a 204."})] = None


class BatchResponse(Out):
    responses: list[CallResponse]


@router.add("batch", PATH, body=BatchRequest, response=BatchResponse, tag=TAG)
async def batch(req: Any, body: BatchRequest) -> None:
    """Send many calls in one request

    Up to 100 calls, each `{"id"?, "method", "url", "headers"?: {"Idempotency-Key"}, "body"?}`,
    answered `{"responses": [{"id", "status", "headers", "body"}]}` in the same order. Each
    call is routed, validated, authorized and committed exactly as if it came alone, and its
    failure is its own: the batch answers 200 whenever the batch itself is well formed. The
    calls run concurrently, in no guaranteed order; send dependent calls in separate batches.
    Each call counts against the rate limit. A call may not be another batch.
    """
    raise AssertionError("the app runs batches itself (App.run_batch)")
