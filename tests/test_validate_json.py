"""Bodies validated by pydantic straight from the JSON (web/fields.validate_json, the path of
every route whose body has no check_raw rules) are exactly the bodies the parse-then-validate
path accepts, read to the same values; whatever the direct path refuses goes the other way,
so its errors are the ones the API has always answered (the routes' own tests check those)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opensupp.app import ROUTERS
from opensupp.errors import DomainError
from opensupp.web.asgi import parse_object
from opensupp.web.fields import validate, validate_json
from opensupp.web.routing import RouteTable

DIRECT = sorted({route.body for route in RouteTable(ROUTERS).routes if route.direct_json}, key=lambda m: m.__name__)

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "60", "-1", "01", "true", "1", "onload", "onopen", "x" * 300, "a\nb", "\x00", "é", "日本",
                     "2026-05-01T09:00:00+02:00", "2026-02-30T09:00:00Z", "Europe/Prague", "+01:00", "12", "en"]),
    st.text(max_size=8),
)
FIELDS = st.sampled_from([
    "event", "at", "visitor", "seconds_on_site", "seconds_on_page", "number_of_visits", "visitor_page_url",
    "visitor_city", "is_visitor_served", "account_status", "fired_triggers", "title", "lang", "id", "name", "active",
    "email", "fullname", "role", "timezone", "days", "config", "exceptions", "url", "events", "secret", "unknown",
])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=4),
                      max_leaves=12)
BODIES = st.dictionaries(FIELDS, VALUES, max_size=5)
# what orjson refuses and a JSON parser might not: a BOM, NaN, a lone surrogate, bad UTF-8, a
# trailing comma, comments, single quotes, a control character in a string
MANGLE = st.sampled_from([
    lambda raw: b"\xef\xbb\xbf" + raw, lambda raw: raw.replace(b"}", b",}", 1), lambda raw: raw + b"//",
    lambda raw: raw.replace(b"0", b"NaN", 1), lambda raw: raw.replace(b'"', b"'"),
    lambda raw: raw.replace(b'"', b'"\\ud800', 1), lambda raw: raw.replace(b'"', b'"\xff', 1),
    lambda raw: raw.replace(b'"', b'"\x01', 1), lambda raw: raw,
])


def slow_path(model, raw: bytes):
    try:
        return validate(model, parse_object(raw))
    except DomainError:
        return None


@pytest.mark.parametrize("model", DIRECT, ids=lambda m: m.__name__)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODIES, nested=st.dictionaries(FIELDS, VALUES, max_size=4), mangle=MANGLE)
def test_the_direct_path_accepts_what_the_other_accepts_and_no_more(model, body, nested, mangle):
    if "visitor" in body and isinstance(body["visitor"], dict):
        body["visitor"].update(nested)
    try:
        raw = mangle(orjson.dumps(body))
    except orjson.JSONEncodeError:  # an int beyond 64 bits: send its digits
        raw = mangle(str(body).encode())
    direct = validate_json(model, raw)
    if direct is not None:
        assert slow_path(model, raw) == direct


@pytest.mark.parametrize("model", DIRECT, ids=lambda m: m.__name__)
def test_valid_bodies_take_the_direct_path(model):
    assert validate_json(model, b"{}") == validate(model, {})
    assert validate_json(model, b"[]") is None and validate_json(model, b"") is None


def test_which_routes_take_it():
    """Not a create (its Idempotency-Key fingerprint reads the parsed JSON), nor a body with
    check_raw rules (the trigger catalogue's), nor a batch."""
    routes = {(r.verb, r.path) for r in RouteTable(ROUTERS).routes if r.direct_json}
    assert ("query", "/accounts/{aid}/triggers/evaluate") in routes
    assert not {(v, p) for v, p in routes if v in ("create", "batch") or p.startswith("/accounts/{aid}/triggers/{")}
