# Every routine task. The first target that needs it creates .venv and installs the package.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ENV ?= nav2d
RELABEL ?=
SEEDS ?= 1
STEPS ?=
OUT ?= runs/$(ENV)$(if $(RELABEL),-$(RELABEL))-$(shell date +%Y%m%d-%H%M%S)
ARGS ?=

.PHONY: install train eval bc test test-envs docs docs-serve lint format bc-experiment figures peers bench bench-quick jax-versions clean

# metaworld ships the Sawyer model files of sawyer_reach*; --no-deps: it pins an old mujoco, and its code is not imported
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps metaworld==3.1.1
	touch $@

install: $(BIN)/.installed

## make train ENV=nav2d RELABEL=inverse_rl SEEDS=1 STEPS=... ARGS="--batch-size 64" (RELABEL unset: the env's preset, inverse_rl for most)
train: $(BIN)/.installed
	$(BIN)/hipi-train --env $(ENV) $(if $(RELABEL),--relabel $(RELABEL)) --seeds $(SEEDS) $(if $(STEPS),--env-steps $(STEPS)) --out $(OUT) $(ARGS)

## make eval RUN=runs/my-run ARGS="--episodes 20 --video v.mp4": evaluate a saved policy (hipi-eval --help)
RUN ?=
eval: $(BIN)/.installed
	$(if $(RUN),,$(error give the run directory: make eval RUN=runs/...))
	$(BIN)/hipi-eval $(RUN) $(ARGS)

## make bc ENV=cheetah_velocity BC_SEEDS=5 STEPS=...: train an expert, collect its rollouts, relabel + clone
BC_OUT ?= runs/bc-$(ENV)-$(shell date +%Y%m%d-%H%M%S)
BC_SEEDS ?= 5
bc: $(BIN)/.installed
	$(BIN)/hipi-bc collect --env $(ENV) --out $(BC_OUT)/demos.npz $(if $(STEPS),--expert-steps $(STEPS))
	$(BIN)/hipi-bc train --data $(BC_OUT)/demos.npz --out $(BC_OUT) --seeds $(BC_SEEDS) $(ARGS)

## the suite on TEST_WORKERS processes (pytest-xdist; 1 = in this process)
TEST_WORKERS ?= 2
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist worksteal)

## the documentation site (mkdocs.yml: README, docs/*.md, API reference from the docstrings) into site/
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict --site-dir site

## the same site served at http://127.0.0.1:8000, rebuilt on every edit
docs-serve: $(BIN)/.installed
	$(BIN)/mkdocs serve

## training smoke tests of every MJX env (slow: minutes of compilation on a CPU)
test-envs: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m slow

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests experiments benchmarks docs/hooks.py
	$(BIN)/ruff format --check src tests experiments benchmarks docs/hooks.py

format: $(BIN)/.installed
	$(BIN)/ruff format src tests experiments benchmarks
	$(BIN)/ruff check --fix src tests experiments benchmarks

## HIPI-BC vs task-agnostic BC (Fig. 7) and the log Z ablation (Fig. 8, on Fig. 7's datasets); see their --help
bc-experiment: $(BIN)/.installed
	$(BIN)/python experiments/fig7_bc.py --out runs/fig7 $(ARGS)
	$(BIN)/python experiments/fig8_partition_ablation.py --demos runs/fig7 --out runs/fig8 $(ARGS)

## the paper's figures at CPU scale into runs/figures/ (hours on 2 cores; docs/results.md has each command);
## UTD=1,3,10 runs App. C.1's protocol for Fig. 5 and 6 (each strategy at its best updates per env step)
FIG_OUT ?= runs/figures
UTD ?= 1
figures: $(BIN)/.installed
	$(BIN)/python experiments/fig2_partition.py --out $(FIG_OUT)/fig2_partition
	$(BIN)/python experiments/gridworld_stitching.py --out $(FIG_OUT)/gridworld_stitching
	$(BIN)/python experiments/fig5_goal_reaching.py --out $(FIG_OUT)/fig5 --updates-per-env-step $(UTD)
	$(BIN)/python experiments/fig6_general_tasks.py --out $(FIG_OUT)/fig6 --updates-per-env-step $(UTD)
	$(BIN)/python experiments/fig7_bc.py --out $(FIG_OUT)/fig7
	$(BIN)/python experiments/fig8_partition_ablation.py --demos $(FIG_OUT)/fig7 --out $(FIG_OUT)/fig8

## the peers' own venvs for the benchmarks: Brax's SAC needs jax < 0.8; SBX runs Gymnasium's MuJoCo envs
PEERS := .venv-peers
$(PEERS)/%/.installed: benchmarks/peers/%.txt
	$(PYTHON) -m venv $(PEERS)/$*
	$(PEERS)/$*/bin/pip install -q --upgrade pip
	$(PEERS)/$*/bin/pip install -q -r $<
	touch $@

peers: $(PEERS)/brax/.installed $(PEERS)/sbx/.installed

## every benchmark on this machine (about 25 min on 2 CPU cores: 21 before the stage profile, which adds ~4), then docs/benchmarks.md
BENCH_DIR ?= benchmarks/results
bench: $(BIN)/.installed peers
	$(BIN)/python benchmarks/profile_update.py --out $(BENCH_DIR)/profile_update.json $(BENCH_ARGS)
	$(BIN)/python benchmarks/vs_brax.py --out $(BENCH_DIR)/vs_brax.json $(BENCH_ARGS)
	$(BIN)/python benchmarks/vs_python_loop.py --out $(BENCH_DIR)/vs_python_loop.json $(BENCH_ARGS)
	$(BIN)/python benchmarks/relabel_overhead.py --out $(BENCH_DIR)/relabel_overhead.json $(BENCH_ARGS)
	$(BIN)/python benchmarks/seeds_vmap.py --out $(BENCH_DIR)/seeds_vmap.json $(BENCH_ARGS)
	$(BIN)/python benchmarks/scaling.py --out $(BENCH_DIR)/scaling.json $(BENCH_ARGS)
	$(BIN)/python benchmarks/write_docs.py --results $(BENCH_DIR) --out $(BENCH_DIR)/benchmarks.md
	$(if $(filter benchmarks/results,$(BENCH_DIR)),cp $(BENCH_DIR)/benchmarks.md docs/benchmarks.md)

## the same code under several JAX versions (env steps of every env, training, the deadlock trial), alternating
## in one go; each version in its own venv .venv-jax/V (about 80 min on 2 CPU cores); docs/benchmarks.md's table
JAX_VERSIONS ?= 0.9.2 0.10.2
.venv-jax/%/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-jax/$*
	.venv-jax/$*/bin/pip install -q --upgrade pip
	.venv-jax/$*/bin/pip install -q -e .
	.venv-jax/$*/bin/pip install -q jax==$* jaxlib==$*
	.venv-jax/$*/bin/pip install -q --no-deps metaworld==3.1.1
	touch $@

jax-versions: $(BIN)/.installed $(foreach v,$(JAX_VERSIONS),.venv-jax/$(v)/.installed)
	$(BIN)/python benchmarks/jax_versions.py $(foreach v,$(JAX_VERSIONS),--python $(v)=.venv-jax/$(v)/bin/python) --out $(BENCH_DIR)/jax_versions.json

## the same scripts at CI size (a few minutes), into runs/bench-quick/; docs/ is left alone
bench-quick:
	$(MAKE) bench BENCH_DIR=runs/bench-quick BENCH_ARGS=--quick

clean:
	rm -rf $(VENV) $(PEERS) .venv-jax runs .pytest_cache .hypothesis
