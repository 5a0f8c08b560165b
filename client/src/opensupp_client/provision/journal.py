"""The journal: what a provisioning run did, so that the next run of the same file resumes.

``FILE.journal`` (beside FILE), append-only NDJSON, written one ``os.write`` per line, so a
kill leaves at most a torn last line, whose step the server's idempotency replays.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path
from typing import Any

from opensupp_client.provision.planning import compact


class JournalBusy(Exception):
    pass


class Journal:
    """Append-only NDJSON: one ``os.write`` per line, so a kill leaves at most a torn last line.

    Events: ``run`` (each start: file, key base, API URL), ``created`` (a step done: line,
    step, and what it made), ``password`` (a generated password, written before the user's
    create so a resume sends the same one), ``rolledback`` (a failed row's account deleted:
    what the line created is gone, and its next attempt starts anew, under new
    Idempotency-Keys), ``failed`` and ``done``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: list[dict[str, Any]] = []
        self.created: dict[int, dict[str, dict[str, Any]]] = collections.defaultdict(dict)
        self.passwords: dict[tuple[int, str], str] = {}
        self.failed: dict[int, tuple[int, dict[str, Any]]] = {}  # line: (run number, event)
        self.attempts: collections.Counter[int] = collections.Counter()  # line: its rollbacks so far
        self.torn = 0
        self.closed = False  # opened, then closed
        self._fd: int | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        lines = self.path.read_bytes().split(b"\n")
        for raw in lines:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                self._apply(event["event"], event)
            except (ValueError, KeyError, TypeError, AttributeError):
                self.torn += 1  # a line cut by a kill; what it recorded is replayed by its Idempotency-Key

    def _apply(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "run":
            self.runs.append(event)
        elif kind == "created":
            self.created[event["line"]][event["step"]] = event
        elif kind == "password":
            self.passwords[(event["line"], event["step"])] = event["password"]
        elif kind == "rolledback":
            self.created.pop(event["line"], None)
            self.attempts[event["line"]] += 1
        elif kind == "failed":
            self.failed[event["line"]] = (len(self.runs), event)

    @property
    def key_base(self) -> str | None:
        return self.runs[0].get("keyBase") if self.runs else None

    @property
    def opened(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        """Open for appending; JournalBusy when another run holds it (a lock that dies with its process)."""
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if sys.platform != "win32":  # (no fcntl there)
            import fcntl

            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                self._fd = None
                raise JournalBusy(f"another run is using the journal {self.path}; wait for it to end") from None
        size = os.fstat(self._fd).st_size
        if size:
            with self.path.open("rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    os.write(self._fd, b"\n")  # after a torn line, start clean

    def write(self, event: dict[str, Any]) -> None:
        assert self._fd is not None, "open() first"
        data = (compact(event) + "\n").encode()
        written = os.write(self._fd, data)
        while written < len(data):  # only on a full disk or a signal; finish the line
            written += os.write(self._fd, data[written:])
        self._apply(event["event"], event)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None
                self.closed = True
