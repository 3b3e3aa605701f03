"""Actor and twin critic MLPs on concat(observation, [action,] task) (App. C.1).

The first layer is written as a sum of one Dense per input part, which equals a Dense on the
concatenation but lets inputs broadcast: `critic(obs[:, None], act[:, None], tasks[None])` evaluates
all [B, K] (sample, task) pairs of HIPI's relabeling while the first layer costs O((B + K)·H)
instead of O(B·K·H·input).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class SplitInputMLP(nn.Module):
    """ReLU MLP whose input is the (broadcast) concatenation of `parts`."""

    hidden: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, *parts: Array) -> Array:
        h = sum(nn.Dense(self.hidden[0], use_bias=i == 0, name=f"in_{i}")(p) for i, p in enumerate(parts))
        for i, width in enumerate(self.hidden[1:]):
            h = nn.Dense(width, name=f"hidden_{i}")(nn.relu(h))
        return nn.Dense(self.out_dim, name="out")(nn.relu(h))


class Critic(nn.Module):
    """Twin soft Q-functions Q_k(s, a, ψ) -> [members, ...]. With `bound` = (low, high) the output is
    low + (high − low)·sigmoid(x), as the released configs bound the finger and reacher critics."""

    hidden: Sequence[int]
    bound: tuple[float, float] | None = None
    members: int = 2  # 1 applies the first critic alone, given the first row of the twins' parameters

    @nn.compact
    def __call__(self, obs: Array, action: Array, task: Array) -> Array:
        twin = nn.vmap(
            SplitInputMLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            axis_size=self.members,
        )
        q = twin(self.hidden, 1, name="q")(obs, action, task)[..., 0]
        if self.bound is None:
            return q
        low, high = self.bound
        return low + (high - low) * 0.5 * (1.0 + jnp.tanh(0.5 * q))  # sigmoid(q), with a finite gradient anywhere


class Actor(nn.Module):
    """Gaussian pre-tanh policy head: mean and log-std of π(·|s, ψ)."""

    hidden: Sequence[int]
    action_dim: int

    @nn.compact
    def __call__(self, obs: Array, task: Array) -> tuple[Array, Array]:
        out = SplitInputMLP(self.hidden, 2 * self.action_dim, name="mlp")(obs, task)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def _tanh_gaussian_log_prob(u: Array, mean: Array, log_std: Array) -> Array:
    """log π(tanh(u)) for pre-tanh u ~ N(mean, std), with the tanh change-of-variables correction."""
    normal_logp = -0.5 * (((u - mean) / jnp.exp(log_std)) ** 2 + 2 * log_std + jnp.log(2 * jnp.pi))
    # log(1 − tanh(u)²) = 2 (log 2 − u − softplus(−2u)), stable for large |u|
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.sum(normal_logp - log_det, axis=-1)


def tanh_gaussian_sample(key: Array, mean: Array, log_std: Array) -> tuple[Array, Array]:
    """Reparameterised a = tanh(u), u ~ N(mean, std); returns (a, log π(a))."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.tanh(u), _tanh_gaussian_log_prob(u, mean, log_std)


ACTION_EDGE = 1e-6  # a given action is clipped this far inside (−1, 1) before atanh


def tanh_gaussian_log_prob(action: Array, mean: Array, log_std: Array) -> Array:
    """log π(a) of a given action a ∈ [−1, 1] (e.g. a stored one); inputs broadcast."""
    u = jnp.arctanh(jnp.clip(action, -1.0 + ACTION_EDGE, 1.0 - ACTION_EDGE))
    return _tanh_gaussian_log_prob(u, mean, log_std)
