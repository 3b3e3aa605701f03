"""What the benchmarks share: a warmed-up run state, timing of compiled calls (alone and round-robin),
running a peer in its own venv, and timing hipi-jax on the peers' task."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from hipi_jax import programs, runner, training
from hipi_jax.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def warm(config: TrainConfig) -> tuple[training.Trainer, programs.Programs, training.TrainState]:
    """(trainer, programs, the state of all seeds after the warm-up): what a run of `config` holds when
    its first chunk starts."""
    tr = training.build(config)
    prog = programs.programs(tr)
    return tr, prog, prog.warmup(prog.init(training.run_keys(config)))


def first_seed(state):
    """Seed 0 of a vmapped state."""
    return jax.tree.map(lambda x: x[0], state)


def timed(fn: Callable, *args) -> tuple[Any, float]:
    """(fn(*args), its wall seconds until every output array is ready)."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def round_robin(calls: dict[Hashable, Callable[[int], Any]], repeats: int) -> dict[Hashable, list[float]]:
    """Seconds of every call(i) for i < `repeats`, interleaved (each call once per round), so machine
    noise hits them all alike."""
    times = {name: [] for name in calls}
    for i in range(repeats):
        for name, call in calls.items():
            times[name].append(timed(call, i)[1])
    return times


def run_peer(venv: str, script: str, *args: str) -> dict:
    """Run `benchmarks/peers/SCRIPT` with `.venv-peers/VENV` and return the JSON line it prints."""
    python = ROOT / ".venv-peers" / venv / "bin" / "python"
    if not python.exists():
        sys.exit(f"{python} is missing; run `make peers` first")
    out = subprocess.run([str(python), str(ROOT / "benchmarks/peers" / script), *args], capture_output=True,
                         text=True, timeout=1800)  # fmt: skip
    if out.returncode:
        sys.exit(f"the peer {script} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_hipi(epoch_steps: int, epochs: int, **overrides) -> dict:
    """hipi-jax on reacher_goal (the Playground ReacherEasy physics): 16 envs, batch 32, (64, 64),
    replay 100k, 1k warm-up, then `overrides` (e.g. relabel); `epochs` chunks of `epoch_steps` env
    steps. Throughput of the compiled chunks (`summary.json`'s figures), compilation apart."""
    config = TrainConfig.from_options(
        **{
            "env": "reacher_goal",
            "num_envs": 16,
            "batch_size": 32,
            "hidden": (64, 64),
            "buffer_size": 100_000,
            "warmup_steps": 1_000,
            "eval_every": epoch_steps,
            "eval_episodes": 1,
            "env_steps": 1_000 + epochs * epoch_steps,
            **overrides,
        }
    )
    summary, _ = runner.loop(programs.build(config), lambda record: None, progress=False)
    return {k: summary[k] for k in ("env_steps_per_s", "updates_per_s", "compile_s", "train_s")}


def alternate(repeats: int, programs: dict[str, Callable[[], dict]]) -> dict[str, list[dict]]:
    """Run every program once per alternation, in order, `repeats` times: machine noise hits all alike."""
    runs = {name: [] for name in programs}
    for i in range(repeats):
        for name, program in programs.items():
            runs[name].append(program())
        print(f"alternation {i + 1}: " + ", ".join(f"{k} {v[-1]['env_steps_per_s']:,.0f}" for k, v in runs.items()),
              flush=True)  # fmt: skip
    return runs


def ratio_rows(runs: dict[str, list[dict]], base: str, label: str, ratio_key: str) -> list[dict]:
    """One row per program: medians over its runs and the ratio of env steps/s to program `base`,
    which is named `label` in the table."""
    median = lambda rs, k: float(np.median([r[k] for r in rs]))
    base_sps = median(runs[base], "env_steps_per_s")
    rows = []
    for name, rs in runs.items():
        row = {"program": label if name == base else name}
        row.update({k: median(rs, k) for k in ("env_steps_per_s", "updates_per_s", "compile_s") if k in rs[0]})
        rows.append({**row, ratio_key: row["env_steps_per_s"] / base_sps, "per_run": rs})
    return rows
