"""API.md's rules for values, in one place for every validator: the server's request bodies
(``opensupp.web.fields``, ``opensupp.users.api``) and ``opensupp provision``'s check of a file
before it sends anything, so both refuse the same values with the same words.

Pure: no server module, nothing but the standard library, email-validator and the
language list (``opensupp_client.langs``); the client distribution ships it and the server
imports it from there.

A number may come as a decimal string (``"60"``) and a boolean as ``"true"``, ``"false"``,
``"1"`` or ``"0"``; nothing else is coerced (``60.0`` is not an integer, ``1`` is not a
boolean). Strings refuse control characters (tab and newline are allowed in multi-line
fields), and a required string must hold something other than whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import email_validator
from email_validator import EmailNotValidError, validate_email

from opensupp_client.langs import LANGS

MAX_DIGITS = 18  # fits a signed 64-bit column
INT = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}")
NUMBER = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}(\.[0-9]{{1,{MAX_DIGITS}}})?")
BOOLS = {"true": True, "false": False, "1": True, "0": False}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Not whitespace (Python's \s, spelled out: it also serves as a JSON Schema pattern, where
# an ECMA-262 \s would mean another set, without U+0085 and with U+FEFF) nor a control.
NON_BLANK = re.compile(r"[^\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


def as_int(value: Any) -> int | None:
    """An integer, or its decimal string; None for anything else (bools and floats too)."""
    if type(value) is int:
        return value
    if type(value) is str and INT.fullmatch(value):
        return int(value)
    return None


def as_number(value: Any) -> int | float | None:
    """A number (int or finite float, never a bool), or its decimal string."""
    if type(value) is int or (type(value) is float and value == value and abs(value) != float("inf")):
        return value
    if type(value) is str and NUMBER.fullmatch(value):
        return float(value) if "." in value else int(value)
    return None


def as_bool(value: Any) -> bool | None:
    if type(value) is bool:
        return value
    if type(value) is str:
        return BOOLS.get(value)
    return None


def text_problem(value: str, *, multiline: bool, required: bool) -> str | None:
    """Why a string breaks the rules for its kind of field, or None."""
    if (CONTROL_MULTILINE if multiline else CONTROL).search(value):
        return "must not contain control characters" + (" other than tab and newline" if multiline else "")
    if required and not NON_BLANK.search(value):
        return "must not be blank"
    return None


# ----------------------------------------------------------------------------- strings


def too_short(min_length: int) -> str:
    return "must not be empty" if min_length == 1 else f"must be at least {min_length} characters"


def too_long(max_length: int) -> str:
    return f"must be at most {max_length} characters"


def string_problem(value: str, *, max_length: int, min_length: int = 1, multiline: bool = False,
                   required: bool = True) -> str | None:
    """Why ``value`` is not a valid text field of at most ``max_length`` code points (and at
    least ``min_length``), or None; in the server's order: the length, then the characters."""
    if len(value) < min_length:
        return too_short(min_length)
    if len(value) > max_length:
        return too_long(max_length)
    return text_problem(value, multiline=multiline, required=required)


def one_of(choices: Iterable[str]) -> str:
    """The problem of a value outside a fixed set (a role, an event...), in the words the
    server's bodies use for them: "must be one of: agent or admin", "a, b or c"."""
    names = list(choices)
    return "must be one of: " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names))


# ----------------------------------------------------------------------------- fields with rules of their own

EMAIL_MAX = 254
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
NAME_MAX = 255  # a user's fullname and nickname
ROLES = ("agent", "admin")
AVATAR_MAX = 2000
AVATAR = re.compile(r"(https?://[^\x00-\x1f\x7f]+)?")
LANG_PROBLEM = "must be a supported language code, one of: " + ", ".join(LANGS)

# API.md: "syntax is checked, deliverability is not". Special-use domains (.test, .local,
# ...) are a deliverability question, and intranet agents have such addresses; the
# library documents this list as the switch.
email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()


def email_problem(value: str) -> str | None:
    """Why ``value`` is not an e-mail address by its syntax (deliverability is not checked)."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"is not a valid e-mail address: {exc}"
    return None


def lang_problem(value: str) -> str | None:
    return None if value in LANGS else LANG_PROBLEM


def avatar_problem(value: str) -> str | None:
    return None if AVATAR.fullmatch(value) else "must be an http(s) URL or empty"


def role_problem(value: str) -> str | None:
    return None if value in ROLES else one_of(ROLES)
