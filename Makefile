# segue: `make demo` runs the main job on generated data; `make test` runs the tests.
# Both create or refresh .venv (Python >= 3.11) and install what they need from pyproject.toml.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "segue needs Python >= 3.11, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The browser test drives Debian's chromium (never a browser downloaded by Playwright). Installed
# once: the target is the binary, so make skips this when /usr/bin/chromium exists.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo -E) apt-get install -y -qq chromium

# Spark (`--engine spark`, tested by `make test`) runs on a Java runtime, 17 or newer: installed
# with apt when the machine has no java on its PATH.
JAVA := $(or $(shell command -v java),/usr/bin/java)
$(JAVA):
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo -E) apt-get install -y -qq openjdk-17-jre-headless

demo: $(STAMP)
	$(PY) -m segue demo --out demo

# The code's shape is part of the tests: ruff's lint rules and its formatter (pinned in pyproject.toml,
# so every machine formats alike) before the suite.
test: $(STAMP) $(CHROMIUM) $(JAVA)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_foundation.py --playlists 1000000 --work /tmp/segue-bench

clean:
	rm -rf demo .pytest_cache .ruff_cache
