# The template's two commands: `make render` (a project with the defaults) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out

.PHONY: help tools render test test-fast lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-test.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

tools: $(VENV)/.installed ## install the template's test tooling into .venv

render: tools ## render a project with the default answers into ./out/
	$(VENV)/bin/cookiecutter --no-input --output-dir $(OUT) .

test: tools ## the whole suite: hooks, every option combination, then the slow tier
	$(VENV)/bin/pytest

test-fast: tools ## hooks and rendering only (seconds)
	$(VENV)/bin/pytest -m "not slow"

lint: tools ## lint the template's own code (hooks and tests)
	$(VENV)/bin/ruff check hooks tests
	$(VENV)/bin/ruff format --check hooks tests

clean: ## remove rendered output and caches
	rm -rf $(OUT) .baked .pytest_cache .ruff_cache
