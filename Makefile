# Two commands for a fresh machine: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-long lint bench bench-instructions clean

# Two stamps: the demo installs only what it needs (extra `demo`), the tests the dev toolchain.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

$(VENV)/.demo-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[demo]'
	touch $@

## demo: example services -> real google-genai client -> local fake Gemini -> SQLite -> report
demo: $(VENV)/.demo-installed
	$(VENV)/bin/vividly-trace demo

## test: lint, type-check, then the whole suite (starts a throwaway PostgreSQL on 127.0.0.1)
test: $(VENV)/.installed
	scripts/system-deps.sh
	$(MAKE) lint
	$(PY) -m pytest -q

## test-long: the long version of the reliability suite
test-long: $(VENV)/.installed
	scripts/system-deps.sh
	$(PY) -m pytest -q -m long --run-long tests/reliability

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check vividly_trace tests examples benchmarks
	$(VENV)/bin/ruff format --check vividly_trace tests examples benchmarks
	$(VENV)/bin/mypy

## bench: run the benchmarks and rewrite BENCHMARKS.md
bench: $(VENV)/.installed
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/sql_sink.py

## bench-instructions: instructions per real call under valgrind (repeatable; slow)
bench-instructions: $(VENV)/.installed
	$(PY) benchmarks/bench_instructions.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
