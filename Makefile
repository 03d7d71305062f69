# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-seedos

.PHONY: install run test lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-installs when a dependency list changes. The SDK is its own distribution (sdk/).
$(STAMP): pyproject.toml sdk/pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e './sdk[testing,examples]' -e '.[test]'
	@touch $(STAMP)

# npm packages, each folder from its own lock file (one rule for all): the test authorization
# server (oidc-provider) for the OAuth tests; an unmodified y-websocket client for the sync
# interop tests; the dashboard's browser code (yjs, y-websocket), which the gateway serves from
# these files; axe-core, which the dashboard's browser tests run in its pages; Prism serving
# GitHub's OpenAPI description (@octokit/openapi), which the GitHub definition is tested against.
OIDC_MODULES := sdk/tests/oidc/node_modules/.package-lock.json
INTEROP_MODULES := tests/sync_interop/node_modules/.package-lock.json
DASHBOARD_MODULES := gateway/dashboard/vendor/node_modules/.package-lock.json
AXE_MODULES := tests/dashboard/node_modules/.package-lock.json
PRISM_MODULES := tests/catalog/prism/node_modules/.package-lock.json
%/node_modules/.package-lock.json: %/package.json %/package-lock.json
	npm ci --prefix $* --no-audit --no-fund --loglevel=error

# The providers' own API descriptions the catalog's definitions are checked against, pinned by
# version and integrity in marketplace_service/catalog/verification.json: only the files named
# there are kept (tests/catalog/descriptions.py).
DESCRIPTIONS := tests/catalog/.descriptions/.fetched
$(DESCRIPTIONS): marketplace_service/catalog/verification.json tests/catalog/descriptions.py | $(STAMP)
	$(PY) -m tests.catalog.descriptions
	@touch $@

# Debian's Chromium for the browser tests (Playwright drives it; its own download does not work
# here). apt's package lists are refreshed only when the install fails without.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends
$(CHROMIUM):
	$(APT_INSTALL) chromium || { $(SUDO) apt-get update && $(APT_INSTALL) chromium; }

# Debian's redis-server for the gateway's shared rate limits (tests/gateway/test_rate_limits.py
# starts its own on a free loopback port; nothing runs it as a service).
REDIS := /usr/bin/redis-server
$(REDIS):
	$(APT_INSTALL) redis-server || { $(SUDO) apt-get update && $(APT_INSTALL) redis-server; }

# Debian's prometheus package (prometheus and promtool), unpacked under .cache/prometheus: no
# daemon started, no root needed once apt's lists are there. tests/monitoring/ checks the config
# and rules and runs their unit tests with promtool, and scrapes the running suite with
# prometheus. If the download fails, the package is installed, and its binaries linked there.
PROMETHEUS_DIR := .cache/prometheus
PROMTOOL := $(PROMETHEUS_DIR)/usr/bin/promtool
$(PROMTOOL):
	rm -rf $(PROMETHEUS_DIR) && mkdir -p $(PROMETHEUS_DIR)/deb
	( cd $(PROMETHEUS_DIR)/deb && { apt-get download prometheus \
		|| { $(SUDO) apt-get update && apt-get download prometheus; }; } ) \
		&& dpkg-deb -x $(PROMETHEUS_DIR)/deb/prometheus_*.deb $(PROMETHEUS_DIR) \
		|| { $(APT_INSTALL) prometheus || { $(SUDO) apt-get update && $(APT_INSTALL) prometheus; }; \
			mkdir -p $(PROMETHEUS_DIR)/usr/bin \
			&& ln -sf /usr/bin/prometheus /usr/bin/promtool $(PROMETHEUS_DIR)/usr/bin/; }
	rm -rf $(PROMETHEUS_DIR)/deb
	$(PROMTOOL) --version >/dev/null && $(PROMETHEUS_DIR)/usr/bin/prometheus --version >/dev/null

install: $(STAMP) $(DASHBOARD_MODULES)

## Start the whole suite on the embedded PostgreSQL (or DATABASE_URL) with demo data.
run: install
	$(VENV)/bin/seedos up

## Lint, format check and every test: the suite's, then the SDK's.
test: install $(OIDC_MODULES) $(INTEROP_MODULES) $(AXE_MODULES) $(PRISM_MODULES) $(DESCRIPTIONS) \
		$(CHROMIUM) $(REDIS) $(PROMTOOL)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest
	cd sdk && ../$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## Performance figures (docs/benchmarks.md). Installs wrk from Debian's packages if missing.
bench: install $(REDIS)
	$(PY) bench/gateway_proxy.py
	$(PY) bench/sign_in.py
	$(PY) bench/rate_limits.py
	$(PY) bench/connector_read.py
	$(PY) bench/sync.py
	$(PY) bench/sync_ws.py
	$(PY) bench/recommendations.py
	$(PY) bench/marketplace_search.py
	$(PY) bench/dashboard.py
	$(PY) bench/offline_batch.py
	$(PY) bench/offline_merge.py
	$(PY) bench/definitions.py
	$(PY) bench/webhooks.py
	$(PY) bench/metrics_endpoint.py
	$(PY) bench/metrics_history.py
	$(PY) bench/alerts.py
	$(PY) bench/outbound.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
