# `make demo` and `make test` each install what they need into .venv first.
.PHONY: install demo lint test test-fast bench clean

VENV := .venv
BIN := $(VENV)/bin

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python scripts/demo.py

# ruff (pyproject [tool.ruff]) and mypy (strict on strategies/, market/, ledger/, store/; [tool.mypy])
lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/python -m mypy

test: lint
	$(BIN)/python -m pytest -q tests

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow" tests

bench: $(VENV)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs out .pytest_cache .hypothesis
