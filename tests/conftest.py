"""Shared test fixtures: the tiny training config and cheap compilation for the train/CLI tests."""

from __future__ import annotations

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache

from hipi_jax.config import TrainConfig
from hipi_jax.render import headless_gl

headless_gl()  # offscreen rendering (MUJOCO_GL=egl) on a headless machine; must run before mujoco is imported

# The smallest run that exercises every part of the loop (2 seeds, 2 envs, 2 chunks).
TINY_CONFIG = TrainConfig(
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
