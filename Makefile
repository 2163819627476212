# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment it needs, installs the project, and runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The main job on this repository's own incidents, automations and history.
demo: $(STAMP)
	$(BIN)/gitops-incidents validate
	$(BIN)/gitops-incidents events > $(VENV)/events.jsonl
	@echo "events: $$(wc -l < $(VENV)/events.jsonl) derived from this repository's history" \
		"($(VENV)/events.jsonl); the last one:" >&2
	@tail -n 1 $(VENV)/events.jsonl
	@echo "what the automations would do over this repository's whole history:" >&2
	$(BIN)/gitops-incidents plan --base "$$(git rev-list --max-parents=0 HEAD | tail -n 1)"
	@# A local Prefect server, paused and resumed for real by the history replayed in a
	@# scratch clone; the site then measures impact from it (demo/prefect_demo.py).
	$(BIN)/python demo/prefect_demo.py
	env $$(cat $(VENV)/prefect/env 2>/dev/null) $(BIN)/gitops-incidents build
	env $$(cat $(VENV)/prefect/env 2>/dev/null) $(BIN)/gitops-incidents serve --dev-addr 127.0.0.1:8000

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The browser tests run Debian's chromium; it is installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests" >&2; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# pytest exits 5 when it collected nothing: here that is a failure, not a pass.
unit: $(STAMP) browser
	@$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
