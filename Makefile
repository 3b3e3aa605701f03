# Every routine task. The first target that needs it creates .venv and installs the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ENV ?= nav2d
RELABEL ?= inverse_rl
SEEDS ?= 1
STEPS ?=
OUT ?= runs/$(ENV)-$(RELABEL)-$(shell date +%Y%m%d-%H%M%S)
ARGS ?=

.PHONY: install train test test-envs lint format relabel-experiment clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

## make train ENV=nav2d RELABEL=inverse_rl SEEDS=1 STEPS=... ARGS="--batch-size 64"
train: $(BIN)/.installed
	$(BIN)/hipi-train --env $(ENV) --relabel $(RELABEL) --seeds $(SEEDS) $(if $(STEPS),--env-steps $(STEPS)) --out $(OUT) $(ARGS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

## training smoke tests of every MJX env (slow: minutes of compilation on a CPU)
test-envs: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m slow

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests experiments benchmarks
	$(BIN)/ruff format --check src tests experiments benchmarks

format: $(BIN)/.installed
	$(BIN)/ruff format src tests experiments benchmarks
	$(BIN)/ruff check --fix src tests experiments benchmarks

## none / random / final / future / inverse_rl on nav2d, 3 vmapped seeds each (see README for the budget)
relabel-experiment: $(BIN)/.installed
	$(BIN)/python experiments/nav2d_relabel.py $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
