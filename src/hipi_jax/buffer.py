"""Replay buffer: a pytree of preallocated arrays with the trajectory structure HER needs.

Layout: one ring per parallel env, `[num_envs, capacity, ...]`, all written in lockstep at one
cursor, so each env's episodes are contiguous (mod capacity). Each slot records its episode id and
its step index in the episode; `episode_length[e, id % capacity]` holds the length stored so far.
From these the final slot of a sample's episode is exact, for episodes that ended early
(terminal on success), ran to the time limit, or are still running, and so is `future`
(one of the next 4 states of the same episode, App. C.1).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from flax import struct

from hipi_jax.types import Episode, Sample, Transition

Array = jax.Array

FUTURE_HORIZON = 4  # `future` picks one of the next 4 states (App. C.1)


@struct.dataclass
class BufferState:
    data: Transition  # leaves [num_envs, capacity, ...]
    episode: Array  # [num_envs, capacity] int32 episode id of each slot
    step: Array  # [num_envs, capacity] int32 step index of each slot within its episode
    episode_length: Array  # [num_envs, capacity] int32, indexed by episode id % capacity
    current_episode: Array  # [num_envs] int32 id of the episode each env is running
    cursor: Array  # [] int32 next slot to write
    size: Array  # [] int32 filled slots per env (<= capacity)


def init(example: Transition, num_envs: int, capacity: int) -> BufferState:
    """Zero-filled buffer for `capacity` steps per env, shaped like one unbatched `example`."""
    if capacity < 1 or num_envs < 1:
        raise ValueError(f"buffer needs capacity >= 1 and num_envs >= 1, got {capacity}, {num_envs}")
    zeros = lambda x: jnp.zeros((num_envs, capacity) + jnp.shape(x), jnp.result_type(x))
    ints = jnp.zeros((num_envs, capacity), jnp.int32)
    return BufferState(
        data=jax.tree.map(zeros, example),
        episode=ints,
        step=ints,
        episode_length=ints,
        current_episode=jnp.zeros((num_envs,), jnp.int32),
        cursor=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def nbytes(buffer: BufferState) -> int:
    """Device memory held by the buffer, in bytes."""
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(buffer))


def capacity(buffer: BufferState) -> int:
    return buffer.episode.shape[1]


def insert(buffer: BufferState, transition: Transition, step: Array, ended: Array) -> BufferState:
    """Write one step of every env. `step` [num_envs]: index of this step in its episode;
    `ended` [num_envs]: the episode ended with this step (terminal or truncated)."""
    num_envs, cap = buffer.episode.shape
    chex.assert_tree_shape_prefix(transition, (num_envs,))
    chex.assert_shape([step, ended], (num_envs,))
    c = buffer.cursor
    envs = jnp.arange(num_envs)
    data = jax.tree.map(lambda store, x: store.at[:, c].set(x), buffer.data, transition)
    return buffer.replace(
        data=data,
        episode=buffer.episode.at[:, c].set(buffer.current_episode),
        step=buffer.step.at[:, c].set(step.astype(jnp.int32)),
        episode_length=buffer.episode_length.at[envs, buffer.current_episode % cap].set(step.astype(jnp.int32) + 1),
        current_episode=buffer.current_episode + ended.astype(jnp.int32),
        cursor=(c + 1) % cap,
        size=jnp.minimum(buffer.size + 1, cap),
    )


def steps_to_episode_end(buffer: BufferState, env: Array, slot: Array) -> Array:
    """How many slots after `slot` the stored part of its episode ends (0 for its last step)."""
    cap = capacity(buffer)
    episode = buffer.episode[env, slot]
    return buffer.episode_length[env, episode % cap] - 1 - buffer.step[env, slot]


def episode_view(buffer: BufferState, env: Array, slot: Array, length: int) -> Episode:
    """The stored part of the episodes of (env, slot) [B], as `length` (the episode cap) slots from the
    episode's first slot; a slot counts while it still holds that episode (the ring may have overwritten
    the start) and lies within its stored length. Steps keep their order; masked ones are zeros."""
    cap = capacity(buffer)
    episode = buffer.episode[env, slot]
    first = slot - buffer.step[env, slot]
    t = jnp.arange(length)
    slots = (first[:, None] + t) % cap  # [B, T]
    rows = env[:, None]
    stored = buffer.episode_length[env, episode % cap][:, None]
    mask = (t < stored) & (buffer.episode[rows, slots] == episode[:, None]) & (t < cap)
    earliest = jnp.take_along_axis(slots, jnp.argmax(mask, axis=1)[:, None], axis=1)[:, 0]
    zero = lambda x: jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 2)), x, 0)  # noqa: E731
    return Episode(
        first_obs=buffer.data.obs[env, earliest],
        features=zero(buffer.data.features[rows, slots]),
        action=zero(buffer.data.action[rows, slots]),
        mask=mask,
    )


def _below(bits: Array, n: Array | int) -> Array:
    """Uniform integers in [0, n) from uint32 bits, n ≥ 1 (may be traced): bits mod n, whose bias (at
    most n / 2³² relative) is below 3·10⁻⁴ at a million slots. One draw of bits for every index of a
    sample costs a fraction of one `randint` per index on the CPU."""
    return (bits % jnp.asarray(n, jnp.uint32)).astype(jnp.int32)


def sample(buffer: BufferState, key: Array, batch_size: int, episode_steps: int = 0) -> Sample:
    """Uniform sample of stored steps with their `final` and `future` hindsight features, and the
    released code's (current-state features of the last step, and of a step j ~ U[i, T)); with
    `episode_steps` T > 0 also each sample's whole stored episode (`episode_view`)."""
    num_envs, cap = buffer.episode.shape
    u_env, u_slot, u_future, u_released = jax.random.bits(key, (4, batch_size), jnp.uint32)
    env = _below(u_env, num_envs)
    slot = _below(u_slot, jnp.maximum(buffer.size, 1))
    remaining = steps_to_episode_end(buffer, env, slot)
    final_slot = (slot + remaining) % cap
    future_slot = (slot + _below(u_future, jnp.minimum(remaining, FUTURE_HORIZON - 1) + 1)) % cap
    released_slot = (slot + _below(u_released, remaining + 1)) % cap
    transition = jax.tree.map(lambda x: x[env, slot], buffer.data)
    return Sample(  # gathers a strategy does not read are removed by XLA
        transition=transition,
        final_features=buffer.data.features[env, final_slot],
        future_features=buffer.data.features[env, future_slot],
        released_final_features=buffer.data.obs_features[env, final_slot],
        released_future_features=buffer.data.obs_features[env, released_slot],
        episode=episode_view(buffer, env, slot, episode_steps) if episode_steps > 0 else None,
        steps_left=remaining,
    )
