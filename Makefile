# The template's two commands: `make render` (a project with the defaults) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out

.PHONY: help tools render test test-fast lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# gitlab-ci-local runs the generated pipeline's jobs; 4.73.0 is the newest that runs on Node 20.
GITLAB_CI_LOCAL := $(CURDIR)/.ci/node/node_modules/.bin/gitlab-ci-local
export GITLAB_CI_LOCAL

$(VENV)/.installed: requirements-test.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

$(GITLAB_CI_LOCAL):
	npm install --silent --no-audit --no-fund --prefix .ci/node gitlab-ci-local@4.73.0

tools: $(VENV)/.installed $(GITLAB_CI_LOCAL) ## install the template's test tooling (.venv, .ci/node)

render: $(VENV)/.installed ## render a project with the default answers into ./out/
	$(VENV)/bin/cookiecutter --no-input --output-dir $(OUT) .

# The tools in .venv/bin (uv, cookiecutter, cruft) come first on PATH for every command the
# tests run, so a fresh machine needs no global installs.
TEST_PATH := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

# Two pytest-xdist workers: the slow tests are mostly single-threaded installs, pipelines and
# suites, so two run side by side on a 2-CPU machine. --dist loadfile keeps each test file on
# one worker, so a file's session fixtures (e.g. the config repo's validator venv) are set up
# once; test_pipeline.py and test_service.py each install the default project on their worker.
# WORKERS=0 runs everything in one process.
WORKERS ?= 2

test: tools lint ## the whole suite: lint, hooks, every option combination, then the slow tier
	$(TEST_PATH) $(VENV)/bin/pytest -n $(WORKERS) --dist loadfile

test-fast: $(VENV)/.installed ## hooks and rendering only (seconds)
	$(TEST_PATH) $(VENV)/bin/pytest -m "not slow"

lint: $(VENV)/.installed ## lint the template's own code (hooks and tests)
	$(VENV)/bin/ruff check hooks tests
	$(VENV)/bin/ruff format --check hooks tests

clean: ## remove rendered output and caches
	rm -rf $(OUT) .baked .pytest_cache .ruff_cache
