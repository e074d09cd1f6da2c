# GeoSim — the two commands a user needs: `make demo` (run) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQUIREMENTS := requirements.txt requirements-dev.txt
REQ_HASH := $(shell cat $(REQUIREMENTS) | sha256sum | cut -c1-16)
STAMP := $(VENV)/.geosim-requirements-$(REQ_HASH)
PORT ?= 8000
DEMO_PER_CLASS ?= 200

.PHONY: install demo test test-embedded lint

install: $(STAMP)  ## create .venv with every pinned dependency (reuses a good one)

$(STAMP): $(REQUIREMENTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	@rm -f $(VENV)/.geosim-requirements-* && touch $@
	@echo "Dependencies installed in $(VENV)."

# The demo's settings (geosim_site/demo_settings.py) keep a secret key in var/secret_key, which the
# README's later `python manage.py …` commands read too.
demo: install  ## SQLite + in-process tasks: import images, get a model, build the index, serve
	DJANGO_SETTINGS_MODULE=geosim_site.demo_settings $(PY) manage.py demo --port $(PORT) --per-class $(DEMO_PER_CLASS) $(if $(DATASET),--dataset "$(DATASET)")

lint: install
	$(VENV)/bin/ruff check .

# The full suite uses DATABASE_URL / REDIS_URL when set (CI sets Postgres and Redis); then, only in
# that case, the Django tests run once more on the embedded default (SQLite, in-process tasks): without
# them the main pass already was the embedded setup. Real-data tests read GEOSIM_REAL_DATA (default
# ../shared/data) and skip with the reason when the archives are absent.
test: install lint
	$(PY) -m pytest
	@if [ -n "$$DATABASE_URL$$REDIS_URL" ]; then \
		$(MAKE) --no-print-directory test-embedded; \
	else \
		echo "Embedded pass skipped: the main pass already ran on SQLite with in-process tasks."; \
	fi

test-embedded: install
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -q -m "not slow and not worker and not browser and not realdata" \
		tests/geosim_site tests/search
