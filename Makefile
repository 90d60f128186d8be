# Two commands do all the set-up on a fresh machine (Python 3.11, gcc, cmake):
#   make run    create .venv, install everything, serve the default farm on 127.0.0.1:8000
#   make test   create .venv, install everything, run lint, types and the tests
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST  ?= 127.0.0.1
PORT  ?= 8000

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml requirements-models.txt scripts/install.sh
	bash scripts/install.sh

install: $(STAMP)

run: $(STAMP)
	$(BIN)/modelfarm serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/gateway_vs_llama.py
	$(BIN)/python benchmarks/gateway_overhead.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
