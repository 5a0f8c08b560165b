"""What an installed server needs besides its Python modules is in the wheel: every data file
under src/opensupp (templates, static files, texts, migrations) matches a package-data pattern
of pyproject.toml, so `pip install .` (not only an editable install) serves every page."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "opensupp"
BUILT = {".py", ".pyc", ".so", ".c", ".pxd"}  # modules, and what the trigger engine's build uses or makes


def test_every_data_file_is_in_the_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["opensupp"]
    data = [path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*")
            if path.is_file() and path.suffix not in BUILT and "__pycache__" not in path.parts]
    assert data, "no data files found: the test looks in the wrong place"
    missing = [name for name in data if not any(fnmatch.fnmatchcase(name, pattern) and
                                                 name.count("/") == pattern.count("/") for pattern in patterns)]
    assert missing == []
