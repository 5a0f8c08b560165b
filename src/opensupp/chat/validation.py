"""What visitors and agents may store, checked: a visitor's details (bounded, variables flat
or labelled), a message's text and its client id. Problems are ``ValidationFailed`` naming
the field, as everywhere in the API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from opensupp import values
from opensupp.chat.models import (
    CLIENT_ID_MAX,
    EMAIL_MAX,
    GROUP_MAX,
    MESSAGE_MAX,
    NAME_MAX,
    PHONE_MAX,
    TITLE_MAX,
    URL_MAX,
    USER_AGENT_MAX,
    VARIABLES_MAX_BYTES,
    VARIABLES_MAX_KEYS,
)
from opensupp.errors import FieldError, ValidationFailed, invalid, unknown_fields

_CLIENT_ID = re.compile(rf"[\x21-\x7e]{{1,{CLIENT_ID_MAX}}}")  # printable ASCII, as an Idempotency-Key
_LANG = re.compile(r"[a-z]{2,3}([_-][A-Za-z0-9]{2,4})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VARIABLE_KEY = 64

#: the details a visitor may set (visitor.connect, visitor.update), with their bounds
SETTABLE = {"name": NAME_MAX, "email": EMAIL_MAX, "phone": PHONE_MAX, "lang": 8, "group": GROUP_MAX}
#: what the browser reports of the page: cut to its column's size rather than refused
REPORTED = {"url": URL_MAX, "title": TITLE_MAX, "referrer": URL_MAX, "user_agent": USER_AGENT_MAX}
_COLUMN = {"group": "grp", "url": "last_url", "title": "last_title"}


def text_problem(value: Any, max_length: int, *, multiline: bool = False, required: bool = False) -> str | None:
    if type(value) is not str:
        return "must be a string"
    if not required and value == "":
        return None
    return values.string_problem(value, max_length=max_length, multiline=multiline, required=required)


def detail_problem(name: str, value: Any) -> str | None:
    problem = text_problem(value, SETTABLE[name])
    if problem is not None or value == "":
        return problem
    if name == "email":
        return values.email_problem(value)
    if name == "lang" and not _LANG.fullmatch(value):
        return "must be a language code (en, pt-br)"
    return None


def _reported(value: Any) -> str | None:
    return None if value is None else _CONTROL.sub("", value) if type(value) is str else None


def labelled_variables(variables: Any, errors: list[FieldError]) -> dict[str, dict[str, Any]]:
    """``smartsupp('variables', ...)`` in either form, flat ``{key: value}`` or labelled
    ``{key: {"label", "value"}}``, as the labelled form (a flat key is its own label);
    values are strings, numbers or booleans. At most 50 keys and 8 KiB as JSON."""
    if not isinstance(variables, dict):
        errors.append(FieldError("variables", "must be an object"))
        return {}
    if len(variables) > VARIABLES_MAX_KEYS:
        errors.append(FieldError("variables", f"must have at most {VARIABLES_MAX_KEYS} keys"))
        return {}
    out: dict[str, dict[str, Any]] = {}
    for key, given in variables.items():
        at = f"variables.{key}"
        label, value = (given.get("label", key), given.get("value")) if isinstance(given, dict) else (key, given)
        if not isinstance(key, str) or not 1 <= len(key) <= _VARIABLE_KEY or _CONTROL.search(key):
            errors.append(FieldError("variables", f"keys must be 1 to {_VARIABLE_KEY} characters"))
        elif isinstance(given, dict) and set(given) - {"label", "value"}:
            errors.append(FieldError(at, "must be a value or {\"label\", \"value\"}"))
        elif text_problem(label, NAME_MAX) is not None:
            errors.append(FieldError(f"{at}.label", "must be a string of at most 255 characters"))
        elif value is not None and not isinstance(value, str | int | float | bool):
            errors.append(FieldError(at, "must be a string, a number or a boolean"))
        else:
            out[key] = {"label": label, "value": value}
    if len(orjson.dumps(out)) > VARIABLES_MAX_BYTES:
        errors.append(FieldError("variables", f"must be at most {VARIABLES_MAX_BYTES} bytes as JSON"))
    return out


def visitor_columns(details: Mapping[str, Any], *, reported: bool = True, strict: bool = True) -> dict[str, Any]:
    """The visitor's columns from ``details``: ``name``, ``email``, ``phone``, ``lang``,
    ``group`` (strings; "" clears), ``variables`` (see ``labelled_variables``) and, with
    ``reported``, the page's ``url``, ``title``, ``referrer`` and ``user_agent`` (cut to
    their columns). None or an absent key changes nothing; an unknown key, or a bad value,
    is a ValidationFailed naming it, or (not ``strict``) is left out."""
    if not isinstance(details, Mapping):
        if strict:
            raise invalid("", "the visitor's details must be an object")
        return {}
    allowed = {*SETTABLE, "variables", *(REPORTED if reported else ())}
    errors = unknown_fields(details, allowed, "", "is not a visitor detail")
    columns: dict[str, Any] = {}
    for name, value in details.items():
        if value is None or name not in allowed:
            continue
        if name == "variables":
            columns["variables"] = orjson.dumps(labelled_variables(value, errors)).decode()
        elif name in REPORTED:
            text = _reported(value)
            if text is None:
                errors.append(FieldError(name, "must be a string"))
            else:
                columns[_COLUMN.get(name, name)] = text[: REPORTED[name]]
        elif (problem := detail_problem(name, value)) is not None:
            errors.append(FieldError(name, problem))
        else:
            columns[_COLUMN.get(name, name)] = value
    if errors and strict:
        raise ValidationFailed(errors)
    if errors:  # leave out what was bad, keep the rest
        bad = {_COLUMN.get(name, name) for name in (e.field.split(".")[0] for e in errors)}
        return {name: value for name, value in columns.items() if name not in bad}
    return columns


def check_text(text: Any, field: str = "text") -> str:
    """A message's text: 1 to 2,000 code points, not blank, no control characters but tab and newline."""
    problem = text_problem(text, MESSAGE_MAX, multiline=True, required=True)
    if problem is not None:
        raise invalid(field, problem)
    return str(text)


def check_client_id(client_id: Any, field: str = "clientId") -> str | None:
    if client_id is None:
        return None
    if type(client_id) is not str or not _CLIENT_ID.fullmatch(client_id):
        raise invalid(field, f"must be 1 to {CLIENT_ID_MAX} printable ASCII characters")
    return client_id


def check_choice(value: str, choices: tuple[str, ...], field: str) -> None:
    if value not in choices:
        raise invalid(field, values.one_of(choices))
