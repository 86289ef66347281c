# The two commands of the README: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test unit integration faults bench soak lint format openapi reference constraints clean chromium

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Coeffection Workflows needs Python 3.11 or newer; run: make PYTHON=python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt -e '.[dev]'
	touch $(STAMP)

## Run the product on this machine: embedded broker, worker, admin API and demo events.
run: $(STAMP)
	$(BIN)/coeflow dev --demo

## Run the whole suite: lint, types, unit, integration and browser tests.
test: $(STAMP) chromium lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not integration"

integration: $(STAMP) chromium
	$(BIN)/pytest -m integration

## Debian's chromium, which the browser tests drive (Playwright cannot download its own
## browsers here); installed once, as root, and a no-op when it is there.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "the browser tests need chromium: sudo apt-get install -y chromium"; exit 1; \
	  fi; }

## Fault tests at full size (the suite runs them with 12,000 events): kills, rescaling, poison.
faults: $(STAMP)
	COEFLOW_FAULT_EVENTS=100000 $(BIN)/pytest -m faults -s

## The benchmark: plain pipe vs processor on one embedded broker; figures in bench-results/.
bench: $(STAMP)
	$(BIN)/coeflow bench

## 30 minutes at half the measured maximum, memory sampled (after a short benchmark).
soak: $(STAMP)
	$(BIN)/coeflow bench --events 50000 --scale-workflows 100 --scale-events 5000 --soak-seconds 1800 --backtest-history 0 --output bench-results/soak

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Write the admin API's OpenAPI document to docs/openapi.json (a test keeps the two equal).
openapi: $(STAMP)
	$(BIN)/python -c 'import sys; from processor.api.openapi import text; sys.stdout.write(text())' > docs/openapi.json

## Write docs/reference.md (triggers, operators, actions) from the models (a test keeps it equal).
reference: $(STAMP)
	$(BIN)/python -m coeflow.tools.reference > docs/reference.md

## Pin constraints.txt to what is installed now (after changing a dependency and passing the suite).
constraints: $(STAMP)
	{ head -n 2 constraints.txt; $(BIN)/pip freeze --exclude-editable \
	  | grep '==' | sed 's/^\([^=]*\)==/\L\1==/; s/_/-/g' | sort; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coeflow-data
