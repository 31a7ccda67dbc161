# stepwise: `make dev` runs the whole service locally, `make test` runs every check.
SHELL := /bin/bash
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
# Lambda runs python3.13; fall back to 3.12 where 3.13 is missing.
PYTHON ?= $(firstword $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13) $(shell command -v python3.13) \
                      $(wildcard $(PYENV_ROOT)/versions/3.12*/bin/python3.12) $(shell command -v python3.12))
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
PORT ?= 3000

.PHONY: dev test lint typecheck template scan browser unit integration bench clean

$(VENV)/.installed: requirements-dev.txt layers/stepwise/requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "stepwise needs Python 3.13 (or 3.12); none was found"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q -r requirements-sam.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -r requirements-checkov.txt
	touch $@

dev: $(VENV)/.installed
	PORT=$(PORT) $(VENV)/bin/stepwise dev --port $(PORT)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

template: $(VENV)/.installed $(SAM_VENV)/.installed
	$(SAM) validate --lint
	@# The layer's Makefile runs python3 -m pip (the SAM venv's, on PATH); the functions' builds need python3.13.
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) build --cached --parallel >/dev/null
	@echo "template: sam validate --lint and sam build passed; StepwiseLayer:" \
		"$$(du -sm .aws-sam/build/StepwiseLayer | cut -f1) MB, $$(find .aws-sam/build/StepwiseLayer -type f | wc -l) files"

# The viewer's tests (tests/integration/test_viewer_browser.py) drive Debian's chromium with its chromedriver.
# Installed once with apt-get (as root: CI is a clean machine); nothing is done when both are installed.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@installed="$$(dpkg-query -W -f='$${db:Status-Status} ' $(BROWSER_PACKAGES) 2>/dev/null)"; \
	if [ "$$installed" != "installed installed " ]; then \
		echo "installing $(BROWSER_PACKAGES) for the viewer's browser tests (apt-get)"; \
		test "$$(id -u)" = 0 || { echo "run as root, or: sudo apt-get install -y $(BROWSER_PACKAGES)"; exit 1; }; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get -o DPkg::Lock::Timeout=300 update -qq && \
		apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null; \
	fi

# A public scanner's checks on the template: each one fails or is skipped in the template with its reason.
scan: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download

test: lint typecheck template scan browser
	$(VENV)/bin/pytest -n 2 --dist loadfile

bench: $(VENV)/.installed
	$(PY) bench/run_workflow.py
	$(PY) bench/concurrency.py

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache
