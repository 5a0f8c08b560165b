"""The one compiled module: the trigger engine's hot path (src/opensupp/triggers/plan.py),
compiled by Cython with the C types of plan.pxd. Everything else is in pyproject.toml.

plan.py is plain Python: where no C compiler is found the build goes on without the
extension (``optional``) and the same file runs as Python, only slower;
``opensupp.triggers.plan.COMPILED`` tells which one runs, and the server logs it at startup.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("opensupp.triggers.plan", ["src/opensupp/triggers/plan.py"], optional=True)],
        compiler_directives={"language_level": 3},
    ),
)
