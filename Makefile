# The README's commands. `make run` serves on the embedded SQLite; `make check` runs the lint and type
# gates (`make lint`: ruff, mypy) and then the suite (`make test`).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
JOBS   ?= auto  # pytest processes (pytest-xdist): one per core; JOBS=0 runs the suite in this one

.PHONY: run check lint test bench install clean

install: $(BIN)/.installed

# setup.py compiles the trigger engine (Cython): a change to it or its source builds it again
# ./client is the SDK's own distribution (opensupp-client), which the server depends on: both in
# one pip command, so that pip takes it from here and never looks the name up on an index
$(BIN)/.installed: pyproject.toml client/pyproject.toml setup.py src/opensupp/triggers/plan.py src/opensupp/triggers/plan.pxd
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./client -e '.[test]'
	@# a venv from before the split: uninstalling the old server took the script the client had just put there
	test -x $(BIN)/opensupp || $(BIN)/python -m pip install --quiet --no-deps --force-reinstall -e ./client
	touch $@

run: install
	$(BIN)/opensupp keys create --name default --if-none
	$(BIN)/opensupp serve --host $(HOST) --port $(PORT)

check: lint test

# ruff and mypy read their settings from pyproject.toml ([tool.ruff], [tool.mypy])
lint: install
	$(BIN)/ruff check
	$(BIN)/mypy

# axe-core for tests/test_accessibility.py (the tests only: the server never needs node)
A11Y := tests/a11y/node_modules/.installed
$(A11Y): tests/a11y/package.json tests/a11y/package-lock.json
	npm ci --prefix tests/a11y --no-audit --no-fund --loglevel=error
	touch $@

test: install $(A11Y)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/api.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) tests/a11y/node_modules build src/*.egg-info client/build client/src/*.egg-info .pytest_cache .hypothesis src/opensupp/triggers/plan.c src/opensupp/triggers/plan.*.so
