"""The arrays that flow between buffer, relabeling and learners (docs/architecture.md data flow)."""

from __future__ import annotations

import jax
from flax import struct

Array = jax.Array


@struct.dataclass
class Transition:
    """One stored step (s, a, s', φ(s), φ(s'), ψ); rewards are not stored, they are recomputed per task."""

    obs: Array  # [..., obs_dim] s
    action: Array  # [..., action_dim] a
    next_obs: Array  # [..., obs_dim] s'
    obs_features: Array  # [..., feature_dim] φ(s), for the released code's reward-on-s convention
    features: Array  # [..., feature_dim] φ(s'), what every task's reward is computed from
    task: Array  # [..., task_dim] the commanded task ψ


@struct.dataclass
class Episode:
    """The stored part of each sample's episode, for trajectory-level relabelers: [batch, T, ...] with
    T the env's episode cap; `mask` marks the steps stored and still in the buffer, in order."""

    first_obs: Array  # [batch, obs_dim] s of the episode's earliest stored step
    features: Array  # [batch, T, feature_dim] φ(s'_t)
    action: Array  # [batch, T, action_dim] a_t
    mask: Array  # [batch, T] bool


@struct.dataclass
class Sample:
    """A replay sample plus the hindsight goals that `final` and `future` relabeling need."""

    transition: Transition  # [batch, ...]
    final_features: Array  # [batch, feature_dim] φ of the last state of the episode stored so far
    future_features: Array  # [batch, feature_dim] φ of one of the next 4 states (App. C.1)
    released_final_features: Array  # [batch, feature_dim] φ(s_{T-1}): the released code's `last` goal
    released_future_features: Array  # [batch, feature_dim] φ(s_j), j ~ U[i, T): its `future` goal
    episode: Episode | None = None  # the sample's whole stored episode (advantage, air), when asked for
    steps_left: Array | None = None  # [batch] int32 stored steps after the sample's in its episode


@struct.dataclass
class Batch:
    """What a learner trains on: transitions with reward and done under their (relabeled) task."""

    obs: Array  # [batch, obs_dim]
    action: Array  # [batch, action_dim]
    next_obs: Array  # [batch, obs_dim]
    task: Array  # [batch, task_dim]
    reward: Array  # [batch] r_ψ(s, a) under `task`
    done: Array  # [batch] float32, 1 where s' is terminal under `task` (no bootstrap)
