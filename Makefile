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

.PHONY: install train bc test test-envs lint format relabel-experiment bc-experiment clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

## make train ENV=nav2d RELABEL=inverse_rl SEEDS=1 STEPS=... ARGS="--batch-size 64"
train: $(BIN)/.installed
	$(BIN)/hipi-train --env $(ENV) --relabel $(RELABEL) --seeds $(SEEDS) $(if $(STEPS),--env-steps $(STEPS)) --out $(OUT) $(ARGS)

## make bc ENV=cheetah_velocity BC_SEEDS=5 STEPS=...: train an expert, collect its rollouts, relabel + clone
BC_OUT ?= runs/bc-$(ENV)-$(shell date +%Y%m%d-%H%M%S)
BC_SEEDS ?= 5
bc: $(BIN)/.installed
	$(BIN)/hipi-bc collect --env $(ENV) --out $(BC_OUT)/demos.npz $(if $(STEPS),--expert-steps $(STEPS))
	$(BIN)/hipi-bc train --data $(BC_OUT)/demos.npz --out $(BC_OUT) --seeds $(BC_SEEDS) $(ARGS)

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

## HIPI-BC vs task-agnostic BC and the Fig. 8 ablation on three domains (CPU budget; see its --help)
bc-experiment: $(BIN)/.installed
	$(BIN)/python experiments/bc_relabel.py --out runs/bc_relabel $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
