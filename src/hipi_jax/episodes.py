"""Whole episodes of a policy on prior tasks: evaluation (Alg. 2) and HIPI-BC's demonstrations (Alg. 3).

One `lax.scan` of `max_steps` vector steps; steps after an episode ends are masked out, never reset,
so row i of every array is one complete episode.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from hipi_jax.envs.base import Env, EnvState, reset_with_prior

Array = jax.Array

# act(key, obs [n, obs_dim], task [n, task_dim]) -> actions [n, action_dim]
ActFn = Callable[[Array, Array, Array], Array]


@struct.dataclass
class Episodes:
    """n episodes of T = env.max_steps steps; `features[i, t]` is φ(s_{t+1}), reached by `actions[i, t]`."""

    obs: Array  # [n, T, obs_dim] s_t
    actions: Array  # [n, T, action_dim]
    features: Array  # [n, T, feature_dim]
    rewards: Array  # [n, T] r_ψ under the commanded task
    done: Array  # [n, T] bool, terminal under the commanded task
    mask: Array  # [n, T] bool, step t belongs to the episode
    tasks: Array  # [n, task_dim] the commanded tasks
    recorded: Any = None  # `record(s_t)` for t = 0..T, leaves [n, T + 1, ...] (e.g. MJX qpos for rendering)

    @property
    def returns(self) -> Array:
        """Undiscounted return of each episode: [n]."""
        return jnp.sum(jnp.where(self.mask, self.rewards, 0.0), axis=1)

    @property
    def success(self) -> Array:
        """Whether each episode reached a terminal (goal) state: [n] bool."""
        return jnp.any(jnp.logical_and(self.done, self.mask), axis=1)


def rollout(
    env: Env,
    act: ActFn,
    key: Array,
    n: int,
    tasks: Array | None = None,
    record: Callable[[EnvState], Any] | None = None,
) -> Episodes:
    """n episodes of `act`, one per env; env i starts from `reset_with_prior(env, split(key, n)[i])`.
    `tasks` [n, task_dim] replaces the prior's draws (same starts); `record(state)` is kept for the
    first state and every state a step reaches (`Episodes.recorded`, T + 1 entries)."""
    start = jax.vmap(partial(reset_with_prior, env))(jax.random.split(key, n))
    if tasks is not None:
        start = start.replace(task=jnp.asarray(tasks, start.task.dtype).reshape(start.task.shape))
    k_act = jax.random.fold_in(key, n)

    def body(carry, key):
        es, alive = carry
        action = act(key, es.obs, es.task)
        nxt = jax.vmap(env.step)(es, action)
        step = (es.obs, action, nxt.features, nxt.reward, nxt.done, alive, None if record is None else record(nxt))
        alive = jnp.logical_and(alive, jnp.logical_not(jnp.logical_or(nxt.done, nxt.truncated)))
        return (nxt, alive), step

    keys = jax.random.split(k_act, env.max_steps)
    _, steps = jax.lax.scan(body, (start, jnp.ones(n, bool)), keys)
    obs, actions, features, rewards, done, mask, recorded = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)
    if record is not None:  # s_0, then the state each step reached: [n, T + 1, ...]
        recorded = jax.tree.map(lambda s0, rest: jnp.concatenate([s0[:, None], rest], 1), record(start), recorded)
    return Episodes(obs, actions, features, rewards, done, mask, start.task, recorded)


def chunked_rollout(env: Env, act: ActFn, key: Array, n: int, chunk: int) -> Episodes:
    """`rollout` of n episodes, `chunk` at a time (`lax.map`; chunk c from split(key)[c]; the last chunk's
    surplus episodes are dropped). Under the seeds' vmap the env then steps seeds × chunk episodes at once,
    as wide as the training programs, instead of seeds × n: 5 × 200 desk episodes in one batch made
    jaxlib 0.10.2's batched Cholesky (MJX's solver) deadlock XLA's CPU thread pool (docs/reliability.md)."""
    chunk = min(chunk, n)
    parts = jax.lax.map(lambda k: rollout(env, act, k, chunk), jax.random.split(key, -(-n // chunk)))
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:])[:n], parts)
