"""The fused training loop (Alg. 2): collect → insert → U × (sample → relabel → SAC update).

`init`, `collect`, `update`, `iteration`, `chunk`, `warmup` and `evaluate` are pure functions of one
`TrainState`: device functions only. programs.py turns them into jitted programs vmapped over the run
axis (seeds x sweep values): a chunk of K iterations is one `lax.scan` inside one `jax.jit` with the
state donated. The host loop between chunks (evaluation records, checkpoints, signals) is the
runner's; nothing on the host runs per step.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from hipi_jax import buffer as replay
from hipi_jax import envs
from hipi_jax.agents.sac import SAC, SACState
from hipi_jax.config import SWEEPABLE, TrainConfig
from hipi_jax.envs.base import EnvState, auto_reset, reset_with_prior
from hipi_jax.episodes import rollout
from hipi_jax.relabel import relabel
from hipi_jax.types import Transition

Array = jax.Array


@struct.dataclass
class Hyper:
    """The run's values of the sweepable hyperparameters (`config.SWEEPABLE`). They are traced, not
    baked into the program, so runs with different values share one vmapped program."""

    relabel_fraction: Array
    learning_rate: Array
    gamma: Array
    tau: Array


@struct.dataclass
class TrainState:
    """Everything a run carries through the scan (and what a checkpoint holds)."""

    agent: SACState
    buffer: replay.BufferState
    env_state: EnvState  # [num_envs]
    key: Array
    env_steps: Array  # [] int32, environment steps taken by this run
    updates: Array  # [] int32, gradient updates done by this run
    hyper: Hyper


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """The static pieces a run is built from."""

    config: TrainConfig
    env: envs.Env
    agent: SAC


def build(config: TrainConfig) -> Trainer:
    env = envs.make(config.run.env)
    if config.run.starts == "reuse":
        env = dataclasses.replace(env, reuse_initial_state=True)
    return Trainer(config, env, SAC(env.obs_dim, env.action_dim, env.task_family.task_dim, config.sac))


def run_hyper(config: TrainConfig) -> Hyper:
    """Per-run values [runs] float32: the config's, with the swept one set to value r // seeds in run r."""
    options = config.options()
    values = {name: np.full(config.runs, options[name], np.float32) for name in SWEEPABLE}
    if config.sweep_axis is not None:
        name, swept = config.sweep_axis
        values[name] = np.repeat(np.asarray(swept, np.float32), config.run.seeds)
    return Hyper(**values)


def init(tr: Trainer, key: Array, hyper: Hyper) -> TrainState:
    """A fresh run: agent parameters, empty buffer, `num_envs` envs reset with prior tasks."""
    cfg, env = tr.config, tr.env
    k_agent, k_env, k_run = jax.random.split(key, 3)
    env_state = jax.vmap(partial(reset_with_prior, env))(jax.random.split(k_env, cfg.run.num_envs))
    one = jax.tree.map(lambda x: x[0], env_state)
    example = Transition(
        obs=one.obs,
        action=jnp.zeros((env.action_dim,), jnp.float32),
        next_obs=one.obs,
        obs_features=one.features,
        features=one.features,
        task=one.task,
    )
    return TrainState(
        agent=tr.agent.init(k_agent),
        buffer=replay.init(example, cfg.run.num_envs, cfg.capacity_per_env),
        env_state=env_state,
        key=k_run,
        env_steps=jnp.zeros((), jnp.int32),
        updates=jnp.zeros((), jnp.int32),
        hyper=hyper,
    )


def collect(tr: Trainer, state: TrainState, random_actions: bool = False) -> TrainState:
    """One step of all envs (policy samples, or uniform actions during warm-up), stored, auto-reset."""
    cfg, env = tr.config, tr.env
    key, k_act, k_reset = jax.random.split(state.key, 3)
    es = state.env_state
    if random_actions:
        action = jax.random.uniform(k_act, (cfg.run.num_envs, env.action_dim), minval=-1.0, maxval=1.0)
    else:
        action = tr.agent.act(state.agent.actor_params, k_act, es.obs, es.task)
    nxt = jax.vmap(env.step)(es, action)
    transition = Transition(
        obs=es.obs, action=action, next_obs=nxt.obs, obs_features=es.features, features=nxt.features, task=es.task
    )
    ended = jnp.logical_or(nxt.done, nxt.truncated)
    buf = replay.insert(state.buffer, transition, es.t, ended)
    nxt = jax.vmap(partial(auto_reset, env))(nxt, jax.random.split(k_reset, cfg.run.num_envs))
    return state.replace(buffer=buf, env_state=nxt, key=key, env_steps=state.env_steps + cfg.run.num_envs)


def agent_of(tr: Trainer, hyper: Hyper) -> SAC:
    """The SAC learner with this run's (traced) learning rate, discount and Polyak rate."""
    traced = dataclasses.replace(tr.agent.config, learning_rate=hyper.learning_rate, gamma=hyper.gamma, tau=hyper.tau)
    return dataclasses.replace(tr.agent, config=traced)


def update(tr: Trainer, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
    """Sample a batch, relabel it, take one SAC step (Alg. 2)."""
    cfg, agent = tr.config, agent_of(tr, state.hyper)
    key, k_sample, k_relabel, k_sac = jax.random.split(state.key, 4)
    spec = cfg.relabel
    episode_steps = tr.env.max_steps if spec.rule.trajectory_level else 0
    sample = replay.sample(state.buffer, k_sample, cfg.run.batch_size, episode_steps)
    values = agent.relabel_values(state.agent, spec.value_estimator) if spec.value_estimator else None
    batch, relabel_metrics = relabel(
        k_relabel, sample, spec, tr.env.task_family, state.hyper.relabel_fraction, values, state.hyper.gamma
    )
    agent, metrics = agent.update(state.agent, batch, k_sac)
    return state.replace(agent=agent, key=key, updates=state.updates + 1), {**metrics, **relabel_metrics}


def iteration(tr: Trainer, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
    """Collect one vector step, then `updates_per_iteration` updates; metrics are their mean."""
    state = collect(tr, state)
    state, metrics = jax.lax.scan(lambda s, _: update(tr, s), state, None, length=tr.config.updates_per_iteration)
    return state, jax.tree.map(jnp.mean, metrics)


def chunk(tr: Trainer, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
    """K iterations in one scan; metrics averaged over the chunk."""
    state, metrics = jax.lax.scan(lambda s, _: iteration(tr, s), state, None, length=tr.config.iterations_per_chunk)
    return state, jax.tree.map(jnp.mean, metrics)


def warmup(tr: Trainer, state: TrainState) -> TrainState:
    """Uniform random actions, no updates, for `warmup_steps` (App. C.1's initial collection)."""

    def body(s, _):
        return collect(tr, s, random_actions=True), None

    return jax.lax.scan(body, state, None, length=tr.config.warmup_iterations)[0]


def evaluate(tr: Trainer, actor_params, key: Array) -> dict[str, Array]:
    """Deterministic policy (tanh of the mean) on `eval_episodes` prior tasks, one full episode each:
    mean undiscounted return and success rate (first terminal before the time limit)."""

    def act(key, obs, task):
        return tr.agent.act(actor_params, None, obs, task, deterministic=True)

    episodes = rollout(tr.env, act, key, tr.config.evaluation.episodes)
    return {"eval_return": episodes.returns.mean(), "eval_success": episodes.success.astype(jnp.float32).mean()}


def per_run(config: TrainConfig, per_seed: Array) -> Array:
    """Run r gets row r % seeds of a per-seed array: every sweep value sees the same seeds."""
    return jnp.tile(per_seed, (config.runs // config.run.seeds,) + (1,) * (per_seed.ndim - 1))


def run_keys(config: TrainConfig) -> Array:
    return per_run(config, seed_keys(config.run.seed, config.run.seeds))


def seed_keys(seed: int, num_seeds: int) -> Array:
    """Key of seed i = fold_in(PRNGKey(seed), i): adding seeds never changes the existing ones."""
    return jax.vmap(partial(jax.random.fold_in, jax.random.PRNGKey(seed)))(jnp.arange(num_seeds))


def eval_keys(seed: int, num_seeds: int, log_index: int) -> Array:
    """Evaluation tasks depend only on (seed, seed index, log point): every strategy sees the same ones."""
    base = jax.random.fold_in(jax.random.PRNGKey(seed), 2**31 - 1)
    keys = jax.vmap(partial(jax.random.fold_in, base))(jnp.arange(num_seeds))
    return jax.vmap(partial(jax.random.fold_in, data=log_index))(keys)
