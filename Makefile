# `make demo` and `make test` work on a fresh machine: each creates .venv and
# installs the project the first time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

# A .venv whose Python is missing or too old (made before an upgrade, or by another
# python3) is removed, so the rules below build it again.
VENV_OK := $(shell $(BIN)/python -c 'import sys; print(int(sys.version_info >= (3, 11)))' 2>/dev/null)
ifneq ($(VENV_OK),1)
$(shell rm -rf $(VENV))
endif

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "edda-actors needs Python 3.11 or newer; run make with PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" --config-settings editable_mode=strict
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/order_demo.py

# The strict editable install links every module into build/__editable__.*/edda,
# the layout users get; mypy checks that tree (new files need the reinstall).
test: $(STAMP) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict
	$(BIN)/ruff check .
	cd build/__editable__.edda_actors-*/ && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p edda

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py --postgres
	$(BIN)/python benchmarks/waits.py
	$(BIN)/python benchmarks/channels.py
	$(BIN)/python benchmarks/edge.py
	$(BIN)/python benchmarks/llamaindex.py
	$(BIN)/python benchmarks/cluster.py

clean:
	rm -rf $(VENV) build *.egg-info
