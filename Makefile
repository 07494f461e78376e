# The two commands of the README: `make run` and `make test`. Both set everything up first.
# uv comes from PyPI; the locked environment (uv.lock) goes to .venv.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(PYTHON) -m uv

.PHONY: run test setup servers lint typecheck unit clean

setup: .venv/.synced

.venv/.synced: pyproject.toml uv.lock
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) sync --frozen
	@touch $@

## run: sync the sample inventory, then serve dashboard :8080, backend :8081, core :8082
run: setup
	$(UV) run --frozen --no-sync rechecker all

## servers: install MariaDB and PostgreSQL (as root) and build FerretDB into ~/.cache, once
servers:
	bash scripts/install-test-servers.sh
	bash scripts/install-deploy-tools.sh

## test: lint, type-check and run every test against real servers on loopback
test: setup servers lint typecheck
	$(UV) run --frozen --no-sync pytest

lint: setup
	$(UV) run --frozen --no-sync ruff check src tests scripts bench
	$(UV) run --frozen --no-sync ruff format --check src tests scripts bench

typecheck: setup
	$(UV) run --frozen --no-sync mypy

## bench: Rechecker's check cycle vs blackbox_exporter on loopback (bench/README.md),
## e.g. make bench BENCH_ARGS="--n 1000" or BENCH_ARGS="--sizes 1000,10000,100000"
.PHONY: bench
bench: setup
	$(UV) run --frozen --no-sync python -m bench.run $(BENCH_ARGS)

## bench-levers: the cycle once per lever (commits before/after, loop, batching, workers)
.PHONY: bench-levers
bench-levers: setup
	$(UV) run --frozen --no-sync python -m bench.levers $(BENCH_ARGS)

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
