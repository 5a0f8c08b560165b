"""API.md's rules for scalar values, in one place for every validator.

A number may come as a decimal string (``"60"``) and a boolean as ``"true"``, ``"false"``,
``"1"`` or ``"0"``; nothing else is coerced (``60.0`` is not an integer, ``1`` is not a
boolean). Strings refuse control characters (tab and newline are allowed in multi-line
fields), and a required string must hold something other than whitespace.
"""

from __future__ import annotations

import re
from typing import Any

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
