"""Shared test fixtures: the tiny training config and cheap compilation for the train/CLI tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from hipi_jax.config import TrainConfig
from hipi_jax.render import headless_gl

headless_gl()  # offscreen rendering (MUJOCO_GL=egl) on a headless machine; must run before mujoco is imported

# The smallest run that exercises every part of the loop (2 seeds, 2 envs, 2 chunks).
TINY_CONFIG = TrainConfig.from_options(
    env="point_goal",
    relabel="inverse_rl",
    seeds=2,
    env_steps=40,
    warmup_steps=9,
    num_envs=2,
    updates_per_env_step=1.0,
    batch_size=8,
    hidden=(8, 8),
    buffer_size=64,
    eval_every=25,
    eval_episodes=2,
)


@pytest.fixture(scope="module")
def fast_compilation(tmp_path_factory):
    """Cheap compiles for tiny programs: XLA optimizations off, and a persistent cache under this session's
    temp dir so identical programs compile once across modules. Restored afterwards."""
    options = {
        "jax_compilation_cache_dir": str(tmp_path_factory.getbasetemp() / "jax_cache"),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
        "jax_disable_most_optimizations": True,  # XLA's own switch for programs cheaper to run than to optimize
    }
    old = {name: jax.config.values[name] for name in options}
    for name, value in options.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()  # re-read the options at the next compile
    yield
    for name, value in old.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


# --- hipi-train subprocesses (test_checkpoint, test_faults): a tiny run of 10 chunks, 3 checkpoints kept
ARGS = ["--env", "point_goal", "--seeds", "2", "--env-steps", "200", "--warmup-steps", "16", "--num-envs", "2",
        "--batch-size", "8", "--hidden", "8,8", "--buffer-size", "128", "--eval-every", "20", "--eval-episodes", "2",
        "--no-progress", "--keep", "3"]  # fmt: skip
CHUNKS = 10  # (200 - 16) steps / 20 per chunk, rounded up


def train(out: Path, *extra: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hipi_jax", *ARGS, "--out", str(out), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> tuple[int, str]:
    """(exit code, stderr); stdout is kept as `proc.stdout_text`."""
    proc.stdout_text, err = proc.communicate(timeout=600)
    return proc.returncode, err


def records(out: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field (the only value that may differ)."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "wall_s"} for line in lines]


def final_fingerprint(out: Path) -> str:
    newest = max(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())
    meta = json.loads((out / "checkpoints" / str(newest) / "meta" / "metadata").read_text())
    assert meta["chunks_done"] == CHUNKS
    return meta["fingerprint"]  # SHA-256 of the whole final state: parameters, optimizers, buffer, keys


@pytest.fixture(scope="session")
def run_env(tmp_path_factory):
    """Subprocess environment sharing a persistent compilation cache, so restarts compile once. jaxlib 0.9.2
    logs C++ lines for each program it loads from a cache (a warning, 'Assume version compatibility', and
    on some CPUs, AMD EPYC among them, errors 'Target machine feature +prefer-no-gather is not supported',
    jax-ml/jax#38445, although the program loads and runs); the tests read stderr as users see it without a
    cache, so XLA's C++ logs are off (README: Set-up)."""
    cache = tmp_path_factory.mktemp("jax_cache")
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory, run_env) -> Path:
    """The uninterrupted run of `ARGS` (read only: tests compare with it and evaluate its policy)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    code, err = finished(train(out, env=run_env))
    assert code == 0, err
    return out


@pytest.fixture(scope="session")
def reference(reference_dir):
    return records(reference_dir), final_fingerprint(reference_dir)
