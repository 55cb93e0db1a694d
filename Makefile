# Two commands do everything on a fresh machine: `make run` and `make test` (README.md).
# Without DATABASE_URL / REDIS_URL in the environment, ebr.localservices starts an embedded
# PostgreSQL and Redis under .local/ and stops them again when the command ends.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.lock 2>/dev/null | cut -c1-12)
WITH_SERVICES := $(BIN)/python -m ebr.localservices exec --
PYTEST_ARGS ?=

.PHONY: install run test bench lint typecheck audit-deps browser clean-local

install: $(STAMP)

$(STAMP): requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	@$(BIN)/python -m ebr.browser_setup

run: install
	$(WITH_SERVICES) $(BIN)/python -m ebr.devserver

test: install browser
	$(WITH_SERVICES) $(BIN)/python -m pytest --create-db $(PYTEST_ARGS)

bench: install
	$(WITH_SERVICES) $(BIN)/python -m pytest tests/bench -s -p no:randomly --create-db -o addopts="" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

# Services, selectors and the pure modules they rely on (STYLE.md: type hints on services and selectors).
TYPED := qms/audit qms/signatures.py qms/services qms/selectors.py qms/staleness.py qms/record_parts.py \
	ebr/services ebr/selectors.py ebr/process_data.py ebr/review_hooks.py ebr/pdf ebr/values.py ebr/units.py \
	ebr/identity.py ebr/charts.py nlp_review/services.py nlp_review/selectors.py nlp_review/checks.py \
	nlp_review/pipeline

typecheck: install
	$(BIN)/mypy $(TYPED)

audit-deps: install
	$(BIN)/pip-audit --requirement requirements.lock --no-deps --disable-pip

clean-local:
	$(BIN)/python -m ebr.localservices stop || true
	rm -rf .local
