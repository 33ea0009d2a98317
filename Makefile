# prodture — one entry point for set-up, the demo, the tests and the benchmarks.
# Everything is installed from the project's own files; nothing needs to be set up by hand.

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Python versions the test suite also runs on, besides the default interpreter.
EXTRA_PYTHONS ?= 3.10 3.12 3.13
CHECKOUT := examples/checkout

.PHONY: all venv postgres-server demo lint test test-fast test-python test-python-extra test-node test-vscode bench fuzz vsix clean

all: demo

$(VENV)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing prodture[debug,otel,test]"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[debug,otel,test]'
	touch $@

venv: $(VENV)/.installed

# The store tests start a throwaway PostgreSQL cluster of their own (tests/pg_cluster.py); they
# need the server binaries, which this installs from Debian's packages when missing.
postgres-server:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
	  echo "==> installing PostgreSQL (apt-get install postgresql)"
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"
	  $$SUDO apt-get update -qq
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null
	fi

node_modules/.installed: package.json $(wildcard package-lock.json) $(wildcard vscode-extension/package.json) $(wildcard tests/dap-ts/package.json)
	@echo "==> installing node packages (npm ci)"
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	touch $@

vsix: node_modules/.installed
	npm run package

demo: venv
	@echo "==> running the checkout example with recording on (SQLite + HTTP payment gateway)"
	(cd $(CHECKOUT) && ../../$(PY) run_orders.py)
	failing=$$(cd $(CHECKOUT) && ../../$(PY) -c 'import glob, prodture; print(next(p for p in sorted(glob.glob("traces/*.prodtrace")) if not prodture.read_trace(p).outcome.ok))')
	echo
	echo "==> prodture show $(CHECKOUT)/$$failing"
	(cd $(CHECKOUT) && ../../$(VENV)/bin/prodture show "$$failing")
	echo
	echo "==> prodture replay $(CHECKOUT)/$$failing   (database deleted, gateway stopped: everything comes from the trace)"
	(cd $(CHECKOUT) && ../../$(VENV)/bin/prodture replay "$$failing")
	echo
	echo "==> building the VS Code extension (.vsix)"
	$(MAKE) --no-print-directory vsix
	echo
	echo "Open $(CHECKOUT) in VS Code with the extension installed and double-click $$failing to debug it."

test: venv node_modules/.installed postgres-server
	$(MAKE) --no-print-directory lint test-python test-python-extra test-node test-vscode

# Lint and type checks: ruff (lint + format), mypy (pyproject.toml [tool.mypy]), and the
# extension's ESLint + tsc --noEmit on all of it (vscode-extension/eslint.config.mjs).
lint: venv node_modules/.installed
	@echo "==> ruff check, ruff format --check, mypy"
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	echo "==> ESLint and tsc --noEmit on the extension"
	npm run lint --workspace vscode-extension

# The quick loop while changing Python code: the engine, codec, recorder, replay, CLI and unit
# tests; the tests that start a debug adapter, a debuggee or a language server (marked slow)
# are left to make test.
test-fast: venv
	@echo "==> fast Python tests on $$($(PY) -V) (not the slow ones: make test runs everything)"
	$(PY) -m pytest -m "not slow" -q

test-python: venv
	@echo "==> Python tests on $$($(PY) -V)"
	$(PY) -m pytest

# The suite again on each extra interpreter found (pyenv or PATH); a missing one is reported.
test-python-extra:
	@for v in $(EXTRA_PYTHONS); do
	  interp=$$(scripts/find-python.sh $$v) || { echo "==> SKIPPED Python $$v tests: no python$$v interpreter found (pyenv or PATH)"; continue; }
	  venv=.venv-$$v
	  if [ ! -f $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then
	    echo "==> creating $$venv from $$interp"
	    "$$interp" -m venv $$venv
	    $$venv/bin/python -m pip install --quiet -e '.[debug,test]'
	    touch $$venv/.installed
	  fi
	  echo "==> Python tests on $$($$venv/bin/python -V)"
	  $$venv/bin/python -m pytest
	done

test-node: node_modules/.installed venv
	@echo "==> extension unit tests"
	npm test --workspace vscode-extension
	for v in default $(EXTRA_PYTHONS); do
	  if [ $$v = default ]; then interp=$(PY); elif [ -x .venv-$$v/bin/python ]; then interp=.venv-$$v/bin/python; else echo "==> SKIPPED DebugClient tests on Python $$v: no .venv-$$v"; continue; fi
	  echo "==> @vscode/debugadapter-testsupport DebugClient tests on $$($$interp -V)"
	  PRODTURE_PYTHON=$$PWD/$$interp npm test --workspace tests/dap-ts
	done

test-vscode: venv node_modules/.installed
	@echo "==> end-to-end test in a real VS Code (code-server + Chromium)"
	bash scripts/vscode-e2e/install.sh
	bash scripts/vscode-e2e/run.sh
	@echo "==> end-to-end test of the trace store commands in a real VS Code (examples/checkout, a trusted folder)"
	E2E_WALKS=walk-store.cjs E2E_BIG_TRACE=0 E2E_WORKSPACE_TRUST=false \
	  E2E_ARTIFACTS=$$PWD/artifacts/vscode-e2e-store bash scripts/vscode-e2e/run.sh
	@echo "==> end-to-end test of the event store path in a real VS Code (examples/poker)"
	E2E_WALKS=walk-eventstore.cjs E2E_WORKSPACE=$$PWD/examples/poker E2E_BIG_TRACE=0 E2E_WORKSPACE_TRUST=false \
	  E2E_ARTIFACTS=$$PWD/artifacts/vscode-e2e-eventstore bash scripts/vscode-e2e/run.sh
	@echo "==> end-to-end test of the extension's first run in a real VS Code (an interpreter without prodture, installed from the viewer)"
	E2E_WALKS=walk-firstrun.cjs E2E_FRESH_VENV=1 E2E_BIG_TRACE=0 \
	  E2E_ARTIFACTS=$$PWD/artifacts/vscode-e2e-firstrun bash scripts/vscode-e2e/run.sh

bench: venv
	$(PY) benchmarks/bench_foundation.py
	$(PY) benchmarks/bench_recorder.py
	$(PY) benchmarks/bench_driver.py
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/bench_adapter.py
	@for v in $(EXTRA_PYTHONS); do
	  if [ -x .venv-$$v/bin/python ]; then $(PY) benchmarks/bench_adapter.py --python "$$PWD/.venv-$$v/bin/python"; else echo "# SKIPPED adapter benchmarks on Python $$v: run make test-python-extra first"; fi
	done
	$(PY) benchmarks/bench_lsp.py
	$(PY) benchmarks/bench_stores.py
	$(PY) benchmarks/bench_fastapi.py
	$(PY) benchmarks/bench_eventsourcing.py

fuzz: venv
	$(PY) scripts/fuzz_reader.py

clean:
	rm -rf $(VENV) .venv-* node_modules vscode-extension/node_modules vscode-extension/dist tests/dap-ts/node_modules $(CHECKOUT)/traces $(CHECKOUT)/var artifacts
