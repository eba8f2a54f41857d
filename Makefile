# Shipyard developer commands. `make serve` and `make test` are the README quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROJECT ?= examples/support-desk
STAMP := $(VENV)/.installed

.PHONY: install serve test lint typecheck unit gate lock bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

serve: install
	ORT_DISABLE_TELEMETRY=1 $(BIN)/shipyard serve --project $(PROJECT)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

unit: install
	ORT_DISABLE_TELEMETRY=1 OMP_WAIT_POLICY=PASSIVE $(BIN)/pytest

# The examples' evaluation gates: CI fails when a shipped task misses its own gate.
gate: install
	$(BIN)/shipyard train --if-missing --project examples/support-desk
	$(BIN)/shipyard eval ticket-triage --project examples/support-desk
	$(BIN)/shipyard train --if-missing --project examples/assistant-intents
	$(BIN)/shipyard eval route-request --project examples/assistant-intents
	$(BIN)/shipyard ingest wiki examples/knowledge-assistant/data/corpus.jsonl --create --project examples/knowledge-assistant
	$(BIN)/shipyard eval ask-wiki --project examples/knowledge-assistant
	$(BIN)/shipyard train --if-missing --project examples/booking-extract
	$(BIN)/shipyard eval booking-fields --project examples/booking-extract
	$(BIN)/shipyard train --if-missing --project examples/ops-decisions
	$(BIN)/shipyard eval next-action --project examples/ops-decisions

test: lint typecheck unit gate

# Re-resolve the pinned, hash-checked lock file after changing pyproject.toml.
lock: install
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --quiet \
		--no-emit-package llama-cpp-python -o requirements.lock

bench: install
	$(BIN)/python bench/overhead.py --project $(PROJECT)
	$(BIN)/python bench/eval_speed.py --project $(PROJECT)
	$(BIN)/python bench/knowledge.py
	$(BIN)/python bench/knowledge_quality.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache examples/*/.shipyard
