# The two commands: `make demo` (track real runs into a scratch repo and show them; PORT=5000
# for its web UI) and `make test` (set up everything, lint, type-check and run the whole suite).
# CI runs `make test`. `make lint` is ruff and mypy alone; `make test-fast` runs every test but the
# browser ones (no chromium needed), without the lint.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test test-fast lint setup browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# What the demo needs (scikit-learn, the web UI): ~450 MB, against ~1.5 GB for .[all].
$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[sklearn,server]'
	touch $@

$(VENV)/.all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[all]'
	touch $@ $(VENV)/.demo

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.all $(VENV)/.demo

# Debian's chromium for the UI tests (Playwright drives /usr/bin/chromium; no browser download).
# As root with apt-get (CI) it is installed; elsewhere with passwordless sudo too; otherwise this
# stops with what to install, before any test runs.
browser:
	@test -x $(CHROMIUM) || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  elif command -v apt-get >/dev/null && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "make test: the browser tests need Chromium at $(CHROMIUM) (Playwright drives it; none is downloaded)."; \
	    echo "  Debian/Ubuntu: sudo apt-get install chromium   (then run make test again)"; \
	    echo "  Elsewhere: install Chromium and link it to /usr/bin/chromium."; \
	    echo "  Or run every other test without a browser: make test-fast"; \
	    exit 1; \
	  fi; }

setup: $(VENV)/.dev browser

demo: $(VENV)/.demo
	$(BIN)/gitexp demo --port $(PORT)

# ruff and mypy read their settings from pyproject.toml ([tool.ruff], [tool.mypy]).
lint: $(VENV)/.dev
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m mypy

test: setup lint
	$(BIN)/python -m pytest -n 2

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -n 2 --ignore=tests/ui/test_browser.py

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts build dist src/*.egg-info
