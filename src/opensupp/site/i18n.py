"""The dashboard's and the sign-in pages' texts in the user's language.

Each surface keeps its texts in ``strings/<surface>.json``: ``{"en": {key: text}, "cs": {...}}``.
English is complete; every other language says every key English says (tests/test_sign_in.py
checks), so a page never shows a key. Texts may hold ``{name}`` placeholders.

Templates call ``t("key", name=...)`` (the context's ``lang`` picks the language); a page's
script gets its surface's texts as JSON through ``strings_for(lang, surface)``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

HERE = Path(__file__).parent / "strings"
#: the dashboard's languages; a user's other language (the partner API allows all of LANGS) shows English
DASHBOARD_LANGS = ("en", "cs")
DEFAULT = "en"


@cache
def _surfaces() -> dict[str, dict[str, dict[str, str]]]:
    return {path.stem: json.loads(path.read_text("utf-8")) for path in sorted(HERE.glob("*.json"))}


def dashboard_lang(lang: str | None) -> str:
    """``lang`` if the dashboard speaks it (``cs-CZ`` counts as ``cs``), else English."""
    short = (lang or "").replace("_", "-").split("-")[0].lower()
    return short if short in DASHBOARD_LANGS else DEFAULT


@cache
def _merged(lang: str) -> dict[str, str]:
    texts: dict[str, str] = {}
    for surface in _surfaces().values():
        texts.update(surface[DEFAULT])
        texts.update(surface.get(lang, {}))
    return texts


def text(lang: str, key: str, **params: Any) -> str:
    found = _merged(dashboard_lang(lang)).get(key)
    if found is None:
        raise KeyError(f"no text {key!r} in site/strings/*.json")
    return found.format(**params) if params else found


def strings_for(lang: str, surface: str) -> dict[str, str]:
    """One surface's texts in ``lang`` (English where it says nothing), for a page's script."""
    texts = _surfaces()[surface]
    return texts[DEFAULT] | texts.get(dashboard_lang(lang), {})


@jinja2.pass_context
def t(context: Any, key: str, **params: Any) -> str:
    """The template global: ``{{ t("signIn.title") }}`` in the context's ``lang``."""
    return text(context.get("lang") or DEFAULT, key, **params)
