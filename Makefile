# Two commands do everything on a fresh machine with Python 3.11+ and make:
#   make demo   - create the environment if needed, migrate, seed and run the demo
#   make test   - create the environment if needed and run the whole test suite
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test check lint typecheck venv bench bench-import bench-protocols clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "streetlight needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/streetlight demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck
	$(BIN)/lint-imports --no-cache --no-logo  # the import rules in .importlinter

bench-import: $(STAMP)
	$(BIN)/python -m bench.import_bench

bench-protocols: $(STAMP)
	$(BIN)/python -m bench.protocols

bench: bench-import bench-protocols

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
