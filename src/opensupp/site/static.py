"""Static files with content-hashed names: ``static_url("site.css")`` is
``/static/site.<hash>.css``, served with ``Cache-Control: public, max-age=31536000,
immutable`` (a changed file gets a new name, so a cached copy never goes stale). The plain
name (``/static/site.css``) is served too, with ``no-cache``: a browser revalidates it
every time. Both carry the content hash as ``ETag``, and an ``If-None-Match`` that holds
it is answered ``304``.

The hashes are taken once, when the app is built: the files are part of the installed
package and do not change under a running server.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, PathLike, StaticFiles
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
HASH_LENGTH = 12
_IMMUTABLE = "opensupp.static_immutable"  # set in the scope when the name asked for is fingerprinted


class FingerprintedStatic(StaticFiles):
    def __init__(self, directory: Path, prefix: str = "/static") -> None:
        super().__init__(directory=directory)
        self.prefix = prefix
        self.root = directory.resolve()
        self.hashes: dict[str, str] = {}  # logical name: content hash
        self.logical: dict[str, str] = {}  # fingerprinted name: logical name
        for file in sorted(directory.rglob("*")):
            if file.is_file():
                name = file.relative_to(directory).as_posix()
                digest = hashlib.sha256(file.read_bytes()).hexdigest()[:HASH_LENGTH]
                self.hashes[name] = digest
                self.logical[fingerprinted(name, digest)] = name

    def url(self, name: str) -> str:
        """The fingerprinted URL of the file ``name`` (KeyError for a file that is not there)."""
        return f"{self.prefix}/{fingerprinted(name, self.hashes[name])}"

    def get_path(self, scope: Scope) -> str:
        path = super().get_path(scope)
        logical = self.logical.get(PurePosixPath(*path.split(os.sep)).as_posix())
        if logical is not None:
            scope[_IMMUTABLE] = True
            return os.path.join(*logical.split("/"))
        return path

    def file_response(self, full_path: PathLike, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        name = Path(full_path).resolve().relative_to(self.root).as_posix()
        headers = {"cache-control": IMMUTABLE if scope.get(_IMMUTABLE) else REVALIDATE}
        if name in self.hashes:
            headers["etag"] = f'"{self.hashes[name]}"'
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result, headers=headers)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def fingerprinted(name: str, digest: str) -> str:
    """``css/site.css`` -> ``css/site.<digest>.css``."""
    path = PurePosixPath(name)
    return str(path.with_name(f"{path.stem}.{digest}{path.suffix}"))
