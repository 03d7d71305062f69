# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-seedos

.PHONY: install run test lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-installs when the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## Start the whole suite on the embedded PostgreSQL (or DATABASE_URL) with demo data.
run: install
	$(VENV)/bin/seedos up

## Lint, format check and every test.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Performance figures (docs/benchmarks.md). Installs wrk from Debian's packages if missing.
bench: install
	$(PY) bench/gateway_proxy.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
