# The README's commands. `make run` serves on the embedded SQLite; `make test` runs the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test bench install clean

install: $(BIN)/.installed

# setup.py compiles the trigger engine (Cython): a change to it or its source builds it again
$(BIN)/.installed: pyproject.toml setup.py src/opensupp/triggers/plan.py src/opensupp/triggers/plan.pxd
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/opensupp keys create --name default --if-none
	$(BIN)/opensupp serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/api.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis src/opensupp/triggers/plan.c src/opensupp/triggers/plan.*.so
