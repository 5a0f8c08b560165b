"""Reading a provisioning file: CSV or NDJSON into rows in the NDJSON shape.

Line numbers are the file's own, starting at 1. A CSV's delimiter is told by its header
line (a comma, or the semicolon of a European Excel export) or given. Language codes are
taken in any case (``EN`` is ``en``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CSV_COLUMNS = ("title", "lang", "email", "fullname", "password")
FORMATS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
DELIMITERS = (",", ";", "\t", "|")

@dataclass(frozen=True)
class Problem:
    """One problem of the file: where (line 0: the file as a whole), what, and a hint on what to
    do about it, which is said once however many problems share it."""

    line: int
    field: str
    message: str
    hint: str = ""
    fatal: bool = False  # of the file as a whole (its header, its encoding): no row can be sent

    def render(self, name: str) -> str:
        where = f"{name}:{self.line}" if self.line else name
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


def hints(problems: list[Problem]) -> list[str]:
    """The problems' hints, each once, in order of first appearance."""
    return list(dict.fromkeys(p.hint for p in problems if p.hint))


@dataclass
class Row:
    line: int
    data: dict[str, Any]


def detect_format(path: Path, override: str | None) -> str:
    if override:
        return "ndjson" if override == "jsonl" else override
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name} from its extension; "
                         "name it .csv, .ndjson or .jsonl, or pass --format")
    return fmt


def read_rows(path: Path, fmt: str, *, delimiter: str | None = None) -> tuple[list[Row], list[Problem]]:
    """Parse the file into rows in the NDJSON shape; structural problems as Problems.
    ``delimiter``: a CSV's, when not told by its header line (``detect_delimiter``)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [Problem(0, "", f"is not UTF-8 text ({exc.reason} at byte {exc.start})", fatal=True)]
    rows, problems = _read_csv(text, delimiter or detect_delimiter(text)) if fmt == "csv" else _read_ndjson(text)
    for row in rows:
        _lower_langs(row.data)
    return rows, problems


def detect_delimiter(text: str) -> str:
    """A CSV's delimiter, from its first non-blank line (the header: the column names hold
    none of these): the one it has most of, a comma when it has none."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _lower_langs(data: dict[str, Any]) -> None:
    """Language codes in any case: ``EN`` is ``en`` (the API's codes are lower case)."""
    if isinstance(data.get("lang"), str):
        data["lang"] = data["lang"].strip().lower()
    users = data.get("users")
    if isinstance(users, list):
        for user in users:
            if isinstance(user, dict) and isinstance(user.get("lang"), str):
                user["lang"] = user["lang"].strip().lower()


def _read_ndjson(text: str) -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, "", f"is not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            problems.append(Problem(number, "", f"must be a JSON object (one account), not {type_name(value)}"))
            continue
        rows.append(Row(number, value))
    return rows, problems


def _read_csv(text: str, delimiter: str = ",") -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not record or all(not cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in record]
                unknown = [c for c in header if c not in CSV_COLUMNS]
                if unknown:
                    problems.append(Problem(line, "", f"unknown column(s) {', '.join(map(repr, unknown))} "
                                                      f"(allowed: {', '.join(CSV_COLUMNS)})", fatal=True))
                for required in ("title", "lang"):
                    if required not in header:
                        problems.append(Problem(line, "", f"the header has no {required!r} column "
                                                          f"(columns: {', '.join(CSV_COLUMNS)})", fatal=True))
                duplicated = sorted({c for c in header if header.count(c) > 1})
                if duplicated:
                    problems.append(Problem(line, "", f"column(s) {', '.join(duplicated)} appear twice", fatal=True))
                continue
            if len(record) != len(header):
                problems.append(Problem(line, "", f"has {len(record)} fields, the header {len(header)}"))
                continue
            cells = {name: value for name, value in zip(header, record, strict=False) if name in CSV_COLUMNS}
            data: dict[str, Any] = {"title": cells.get("title", ""), "lang": cells.get("lang", "")}
            email, fullname, password = (cells.get(k, "") for k in ("email", "fullname", "password"))
            if email or fullname or password:
                user = {"email": email, "fullname": fullname, "role": "admin"}
                if password:
                    user["password"] = password
                data["users"] = [user]
            rows.append(Row(line, data))
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, "", f"is not valid CSV: {exc}", fatal=True))  # the rest is unread
    if header is None:
        problems.append(Problem(0, "", "has no header line (title,lang,email,fullname,password)", fatal=True))
    return rows, problems


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)
