# `make demo` and `make test` work on a fresh machine: each creates .venv and
# installs the project the first time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" --config-settings editable_mode=strict
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/order_demo.py

test: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
