# The two commands of the README do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m signoff demo --store sqlite:///signoff.db

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check signoff domain projections adapters tests examples
	$(VENV)/bin/ruff format --check signoff domain projections adapters tests examples
	$(VENV)/bin/mypy signoff tests examples

bench: $(STAMP)
	$(PY) -m signoff.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache signoff.db*
