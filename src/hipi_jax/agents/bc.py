"""Task-conditioned behaviour cloning (App. C.2): MLP 2×256 on concat(normalised state, task), MSE to
the normalised action, Adam 3e-4, early stopping when the validation loss rises `patience` epochs in
a row. Sees arrays only: the R valid steps of N trajectories as rows, each row's trajectory index, and
one task per trajectory. `action_clip` c > 0 bounds the normalised actions to [−c, c], targets and outputs
alike: App. C.11's desk, where actions within one demonstration std of the mean (c = 1) were crucial."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax
from flax import struct

from hipi_jax.networks import SplitInputMLP

Array = jax.Array


@struct.dataclass
class Normalizer:
    """Per-dimension mean and std of the valid steps (std of a constant dimension taken as 1)."""

    mean: Array
    std: Array

    @classmethod
    def fit(cls, x: Array, weight: Array) -> Normalizer:
        """Weighted over the rows of x [R, D] (weight [R], 0 = not counted)."""
        w = weight[:, None].astype(x.dtype)
        count = jnp.maximum(w.sum(axis=0), 1.0)
        mean = (x * w).sum(axis=0) / count
        std = jnp.sqrt((((x - mean) ** 2) * w).sum(axis=0) / count)
        return cls(mean, jnp.where(std > 1e-6, std, 1.0))

    def normalize(self, x: Array) -> Array:
        return (x - self.mean) / self.std

    def denormalize(self, y: Array) -> Array:
        return y * self.std + self.mean


@struct.dataclass
class Policy:
    params: dict
    obs_norm: Normalizer
    action_norm: Normalizer


@struct.dataclass
class Fit:
    """Early-stopping state of one training run."""

    params: dict
    opt_state: optax.OptState
    best_params: dict
    best_val: Array
    last_val: Array
    rises: Array  # consecutive epochs whose validation loss rose
    epoch: Array
    val_curve: Array  # [max_epochs], NaN after the last epoch trained


def check_settings(config, checks: dict[str, bool]) -> None:
    """ValueError naming the first of `config`'s settings whose check fails, or whose integer is not below
    2**31 (the loop's int32 counters)."""
    ints = {f.name: getattr(config, f.name) < 2**31 for f in dataclasses.fields(config)
            if type(getattr(config, f.name)) is int}  # fmt: skip
    bad = [name for name in dict.fromkeys([*checks, *ints]) if not (checks.get(name, True) and ints.get(name, True))]
    if bad:
        raise ValueError(f"invalid BC setting {bad[0]}={getattr(config, bad[0])!r}")


@dataclasses.dataclass(frozen=True)
class BC:
    hidden: tuple[int, ...] = (256, 256)
    learning_rate: float = 3e-4
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 3
    val_fraction: float = 0.1
    action_clip: float = 0.0  # c > 0: normalised actions (targets and outputs) clipped to [−c, c] (App. C.11)

    def __post_init__(self):
        check_settings(self, {
            "hidden": len(self.hidden) >= 1 and all(1 <= h < 2**31 for h in self.hidden),
            "learning_rate": math.isfinite(self.learning_rate) and self.learning_rate > 0,
            "batch_size": self.batch_size >= 1,
            "max_epochs": self.max_epochs >= 1,
            "patience": self.patience >= 1,
            "val_fraction": 0.0 < self.val_fraction < 1.0,
            "action_clip": math.isfinite(self.action_clip) and self.action_clip >= 0,
        })  # fmt: skip

    def net(self, action_dim: int) -> SplitInputMLP:
        return SplitInputMLP(self.hidden, action_dim)

    def train(self, obs: Array, actions: Array, traj: Array, tasks: Array, key: Array) -> tuple[Policy, Fit]:
        """Clone `actions` [R, A] from (`obs` [R, O], `tasks[traj]`): R steps, `traj` [R] the trajectory
        each step belongs to, `tasks` [N, task_dim] one task per trajectory.

        Trajectories are split into train/validation by a seeded permutation; normalisers are fitted on
        the training steps. An epoch is one shuffled pass over all R steps in minibatches (validation
        steps weighted 0). Returns the parameters of the best validation epoch."""
        n, rows = tasks.shape[0], obs.shape[0]
        k_split, k_init, k_epochs = jax.random.split(key, 3)
        n_val = max(1, round(self.val_fraction * n))
        is_val = jnp.zeros(n, bool).at[jax.random.permutation(k_split, n)[:n_val]].set(True)[traj]
        train_w, val_w = (~is_val).astype(jnp.float32), is_val.astype(jnp.float32)

        obs_norm, action_norm = Normalizer.fit(obs, train_w), Normalizer.fit(actions, train_w)
        x, y, psi = obs_norm.normalize(obs), self.bound(action_norm.normalize(actions)), tasks[traj]
        net = self.net(actions.shape[-1])
        optimizer = optax.adam(self.learning_rate)
        params = net.init(k_init, x[:1], psi[:1])

        def loss(params, idx, w):
            err = jnp.sum((net.apply(params, x[idx], psi[idx]) - y[idx]) ** 2, axis=-1)
            return jnp.sum(w * err) / jnp.maximum(jnp.sum(w), 1.0)

        steps = math.ceil(rows / self.batch_size)

        def epoch(fit: Fit) -> Fit:
            order = jax.random.permutation(jax.random.fold_in(k_epochs, fit.epoch), steps * self.batch_size) % rows

            def sgd(carry, idx):
                params, opt_state = carry
                updates, opt_state = optimizer.update(jax.grad(loss)(params, idx, train_w[idx]), opt_state)
                return (optax.apply_updates(params, updates), opt_state), None

            batches = order.reshape(steps, self.batch_size)
            params, opt_state = jax.lax.scan(sgd, (fit.params, fit.opt_state), batches)[0]
            val = loss(params, jnp.arange(rows), val_w)
            better = val < fit.best_val
            return Fit(
                params=params,
                opt_state=opt_state,
                best_params=jax.tree.map(lambda new, old: jnp.where(better, new, old), params, fit.best_params),
                best_val=jnp.where(better, val, fit.best_val),
                last_val=val,
                rises=jnp.where(val > fit.last_val, fit.rises + 1, 0),
                epoch=fit.epoch + 1,
                val_curve=fit.val_curve.at[fit.epoch].set(val),
            )

        def running(fit: Fit) -> Array:
            return jnp.logical_and(fit.epoch < self.max_epochs, fit.rises < self.patience)

        start = Fit(
            params=params,
            opt_state=optimizer.init(params),
            best_params=params,
            best_val=jnp.asarray(jnp.inf),
            last_val=jnp.asarray(jnp.inf),
            rises=jnp.zeros((), jnp.int32),
            epoch=jnp.zeros((), jnp.int32),
            val_curve=jnp.full(self.max_epochs, jnp.nan),
        )
        fit = jax.lax.while_loop(running, epoch, start)
        return Policy(fit.best_params, obs_norm, action_norm), fit

    def bound(self, y: Array) -> Array:
        """Normalised actions clipped to [−action_clip, action_clip] (unchanged when action_clip is 0)."""
        return jnp.clip(y, -self.action_clip, self.action_clip) if self.action_clip > 0 else y

    def act(self, policy: Policy, obs: Array, task: Array) -> Array:
        """The cloned action for (obs, task), bounded (`bound`), de-normalised and clipped to [−1, 1]."""
        y = self.net(policy.action_norm.mean.shape[-1]).apply(policy.params, policy.obs_norm.normalize(obs), task)
        return jnp.clip(policy.action_norm.denormalize(self.bound(y)), -1.0, 1.0)
