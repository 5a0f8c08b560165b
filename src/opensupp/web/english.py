"""English for generated text: "a" or "an" by how a word sounds, and a noun's plural.

The OpenAPI summaries and descriptions of the resource routes are made from a noun
("Create a user", "List offline emails"); choosing the article by the first letter wrote
"Create an user". The article follows the first sound, not the first letter: "a user",
"a one-off", "a European", but "an hour", "an SMS", "an 8-hour day".
"""

from __future__ import annotations

import re

# Words starting with a vowel letter but a consonant sound ("you", "w"), by prefix.
_A_BEFORE_VOWEL_LETTER = (
    "use", "usa", "usu", "uti", "ute", "ura", "uri", "uro", "uru", "ure", "uk",
    "unique", "unit", "union", "unicod", "unicorn", "unif", "uniform", "unison", "univers",
    "eu", "ewe", "once",
)
# "one", "one-off", "one's" ("a one-off"), but not "onerous"
_ONE = re.compile(r"one(?![a-z])")
# Words starting with a silent h (a vowel sound).
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")
# Letters whose name starts with a vowel sound, for an initialism spelled out ("an SMS").
_VOWEL_SOUND_LETTERS = frozenset("AEFHILMNORSX")
# Initialisms often written in lower case, read letter by letter all the same ("an http(s) URL")
_SPELLED_OUT = frozenset({"http", "https", "html", "url", "uri", "sql", "ssh", "smtp", "xml", "svg", "id", "ip", "ms"})
_WORD = re.compile(r"[A-Za-z0-9][\w'(-]*")


def article(phrase: str) -> str:
    """``"a"`` or ``"an"`` for the phrase's first word, by its sound."""
    match = _WORD.search(phrase)
    if match is None:
        return "a"
    word = match.group()
    head = re.split(r"[-'(]", word)[0]
    if head.lower() in _SPELLED_OUT:
        head = head.upper()
    if head[0].isdigit():
        return "an" if _number_starts_with_vowel(head) else "a"
    if len(head) > 1 and head.isupper():  # an initialism, read letter by letter
        return "an" if head[0] in _VOWEL_SOUND_LETTERS else "a"
    lower = word.lower()
    if lower.startswith(_SILENT_H):
        return "an"
    if lower[0] not in "aeiou":
        return "a"
    if _ONE.match(lower) or lower.startswith(_A_BEFORE_VOWEL_LETTER):
        return "a"
    return "an"


def with_article(phrase: str) -> str:
    """``"a user"``, ``"an offline e-mail"``."""
    return f"{article(phrase)} {phrase}"


def _number_starts_with_vowel(digits: str) -> bool:
    """8, 80, 800..., 11 and 18 (and their thousands: 11,000, 18 million) start with a vowel sound."""
    digits = digits.replace(",", "")
    if digits.startswith("8"):
        return True
    # "eleven" and "eighteen" lead only when the number's first group of three is 11 or 18
    return len(digits) % 3 == 2 and digits[:2] in ("11", "18")


_IRREGULAR = {"person": "people", "child": "children", "man": "men", "woman": "women", "index": "indexes"}
_UNCHANGED = frozenset({"data", "hours", "settings", "news", "series", "species"})


def plural(phrase: str) -> str:
    """The phrase with its last word in the plural: "offline email" -> "offline emails"."""
    head, _, last = phrase.rpartition(" ")
    lower = last.lower()
    if lower in _UNCHANGED:
        word = last
    elif lower in _IRREGULAR:
        word = _IRREGULAR[lower]
    elif lower.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word
