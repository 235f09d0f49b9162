# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test selftest pacts lint chromium format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## a 200-order day against the bundled reference stack, with its verdict
	$(BIN)/twinyard run scenarios/happy_day.yaml --report-dir reports/demo

test: $(STAMP) lint chromium  ## the whole suite; pytest's "no tests ran" (exit 5) fails the build too
	$(BIN)/pytest -q -n auto -p no:cacheprovider

chromium:  ## headless Chromium (Debian) for the report.html screenshot test
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

selftest: $(STAMP)  ## the detection matrix: every reference-stack defect x the incident library
	$(BIN)/twinyard selftest --json reports/selftest.json

pacts: $(STAMP)  ## rewrite contracts/pacts from the reference stack's consumer tests
	$(BIN)/python -m tests.pacts.record contracts/pacts

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## throughput figures; needs wrk (Debian package)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/simulator_throughput.py
	$(BIN)/python benchmarks/http_clients.py
	$(BIN)/python benchmarks/end_to_end.py

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis *.egg-info
