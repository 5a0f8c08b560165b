"""The key that signs the web pages' cookies: ``OPENSUPP_SECRET_KEY``, or one generated once
and kept in the data directory (``<data_dir>/secret_key``, mode 0600), so that sessions
survive a restart and every worker process signs with the same key.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from opensupp.config import Settings

FILE_NAME = "secret_key"

log = logging.getLogger("opensupp.site")


def secret_key(settings: Settings) -> str:
    """The setting's key, else the kept one, else a new one kept for next time."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / FILE_NAME
    try:
        return _read(path) or _generate(path)
    except OSError as exc:  # a read-only data directory (a container's), a file in its place
        raise RuntimeError(f"cannot keep a generated secret key in {path} ({exc.strerror or exc}): set "
                           "OPENSUPP_SECRET_KEY, or make OPENSUPP_DATA_DIR writable") from None


def _generate(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole under a temporary name, then linked into place: a worker starting at the
    # same moment reads either no file or the whole key, and the first link wins
    temporary = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        else:
            log.info("generated the secret key that signs session cookies into %s (mode 0600); set "
                     "OPENSUPP_SECRET_KEY to choose it instead", path)
    finally:
        temporary.unlink(missing_ok=True)
    kept = _read(path)
    if not kept:
        raise RuntimeError(f"{path} is empty: delete it, or set OPENSUPP_SECRET_KEY")
    return kept


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
