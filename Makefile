# Every target builds .venv by itself when it is missing or stale.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: test lint typecheck demo bench unit clean docs chaos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The layer table of architecture.md is a test over the imports of src/durably.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/pytest -q tests/unit/test_layers.py

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/contract

test: lint typecheck
	$(BIN)/pytest

# The fault tests (SIGKILL, SIGSTOP, crashes in the middle) with their full trial counts;
# `make test` runs the same tests with a few trials each.
chaos: $(STAMP)
	DURABLY_CHAOS=1 $(BIN)/pytest tests/integration -q

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# durably against DBOS Transact (the `bench` extra), SQLite and PostgreSQL; writes
# benchmarks/results/latest.json. BENCH_ARGS passes options, e.g. BENCH_ARGS=--quick.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# The user guide, into site/; any mkdocs warning fails the build.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
