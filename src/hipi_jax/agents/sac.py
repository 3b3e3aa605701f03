"""Soft actor-critic, task-conditioned (App. C.1): twin critics, tanh-Gaussian actor, learned α with
target entropy −dim(A), Polyak τ, Adam, optional unit-norm gradient clipping, critic loss × 0.5.

`SAC` is a frozen struct of static settings whose methods are pure functions of `SACState`.
It also provides the two value estimators HIPI-RL relabels with (Eq. 8 / Alg. 1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import optax
from flax import struct

from hipi_jax.networks import Actor, Critic, tanh_gaussian_log_prob, tanh_gaussian_sample
from hipi_jax.types import Batch

Array = jax.Array


@struct.dataclass
class SACState:
    actor_params: dict
    critic_params: dict
    target_critic_params: dict
    log_alpha: Array  # [] log of the entropy temperature α
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState


def soft_td_target(reward: Array, done: Array, next_q: Array, next_log_prob: Array, alpha, gamma) -> Array:
    """y = r + γ (1 − done) (min_k Q̄_k(s', a') − α log π(a'|s'))."""
    return reward + gamma * (1.0 - done) * (next_q - alpha * next_log_prob)


def grad_step(loss_fn: Callable, params, opt_state, optimizer: optax.GradientTransformation, *args):
    """The one place that computes loss, gradients and the optimizer update (STYLE 5)."""
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, aux


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC's hyperparameters (App. C.1), checked here. `learning_rate`, `gamma` and `tau` may be a
    run's traced values (`training.agent_of`: a sweep varies them inside one program); those are
    checked as numbers before they are traced."""

    hidden: tuple[int, ...] = (64, 64)
    learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    grad_clip: float = 0.0  # global-norm clip; 0 disables (App. C.1 uses 1 on Sawyer/Jaco)
    critic_bound: str = ""  # "LOW,HIGH" squashes Q into (low, high) with a sigmoid; "" = unbounded

    def __post_init__(self):
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden={self.hidden} must be one or more positive widths")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip={self.grad_clip} must be >= 0")
        self.critic_bounds  # noqa: B018 (parses and checks critic_bound)
        if any(isinstance(v, jax.core.Tracer) for v in (self.learning_rate, self.gamma, self.tau)):
            return
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma={self.gamma} is outside [0, 1)")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau={self.tau} is outside (0, 1]")

    @property
    def critic_bounds(self) -> tuple[float, float] | None:
        """(low, high) of `critic_bound`, or None."""
        if not self.critic_bound:
            return None
        try:
            low, high = (float(v) for v in self.critic_bound.split(","))
        except ValueError:
            raise ValueError(f"critic_bound={self.critic_bound!r} must be LOW,HIGH, e.g. -1000,0") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"critic_bound={self.critic_bound!r} needs finite LOW < HIGH")
        return low, high


@dataclasses.dataclass(frozen=True)
class SAC:
    obs_dim: int
    action_dim: int
    task_dim: int
    config: SACConfig = SACConfig()
    critic_loss_weight: float = 0.5  # the TF-Agents SAC the paper used scales the critic loss by 0.5

    @property
    def actor(self) -> Actor:
        return Actor(self.config.hidden, self.action_dim)

    @property
    def critic(self) -> Critic:
        return Critic(self.config.hidden, self.config.critic_bounds)

    @property
    def target_entropy(self) -> float:
        return -float(self.action_dim)

    @property
    def optimizer(self) -> optax.GradientTransformation:
        """Adam (after global-norm clipping when `grad_clip` > 0) on the raveled parameters: one fused
        update instead of one per leaf, the same arithmetic up to float rounding (benchmarks/before_after.py)."""
        adam = optax.adam(self.config.learning_rate)
        clip = self.config.grad_clip
        clipped = optax.chain(optax.clip_by_global_norm(clip), adam) if clip > 0 else adam
        return optax.flatten(clipped)

    def init(self, key: Array) -> SACState:
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, self.obs_dim))
        task = jnp.zeros((1, self.task_dim))
        actor_params = self.actor.init(k_actor, obs, task)
        critic_params = self.critic.init(k_critic, obs, jnp.zeros((1, self.action_dim)), task)
        log_alpha = jnp.zeros((), jnp.float32)
        opt = self.optimizer
        return SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            log_alpha=log_alpha,
            actor_opt=opt.init(actor_params),
            critic_opt=opt.init(critic_params),
            alpha_opt=opt.init(log_alpha),
        )

    def policy(self, actor_params, key: Array, obs: Array, task: Array) -> tuple[Array, Array]:
        """a ~ π(·|s, ψ) and log π(a|s, ψ); inputs broadcast over leading axes."""
        mean, log_std = self.actor.apply(actor_params, obs, task)
        return tanh_gaussian_sample(key, mean, log_std)

    def log_prob(self, actor_params, obs: Array, action: Array, task: Array) -> Array:
        """log π(a|s, ψ) of given actions; inputs broadcast over leading axes."""
        mean, log_std = self.actor.apply(actor_params, obs, task)
        return tanh_gaussian_log_prob(action, mean, log_std)

    def act(self, actor_params, key: Array, obs: Array, task: Array, deterministic: bool = False) -> Array:
        """Action for acting: a sample, or tanh(mean) for evaluation."""
        if deterministic:
            return jnp.tanh(self.actor.apply(actor_params, obs, task)[0])
        return self.policy(actor_params, key, obs, task)[0]

    # ---- losses -------------------------------------------------------------------------------------

    def critic_loss(self, critic_params, state: SACState, batch: Batch, key: Array):
        next_action, next_log_prob = self.policy(state.actor_params, key, batch.next_obs, batch.task)
        next_q = self.critic.apply(state.target_critic_params, batch.next_obs, next_action, batch.task).min(0)
        alpha = jnp.exp(state.log_alpha)
        target = jax.lax.stop_gradient(
            soft_td_target(batch.reward, batch.done, next_q, next_log_prob, alpha, self.config.gamma)
        )
        q = self.critic.apply(critic_params, batch.obs, batch.action, batch.task)  # [2, B]
        loss = self.critic_loss_weight * jnp.sum(jnp.mean((q - target) ** 2, axis=-1))
        return loss, {"q": q.mean(), "target_q": target.mean()}

    def actor_loss(self, actor_params, state: SACState, batch: Batch, key: Array):
        action, log_prob = self.policy(actor_params, key, batch.obs, batch.task)
        q = self.critic.apply(state.critic_params, batch.obs, action, batch.task).min(0)
        alpha = jnp.exp(state.log_alpha)
        return jnp.mean(alpha * log_prob - q), {"entropy": -log_prob.mean()}

    def alpha_loss(self, log_alpha, entropy: Array):
        return -log_alpha * (self.target_entropy - entropy), {}

    def update(self, state: SACState, batch: Batch, key: Array) -> tuple[SACState, dict[str, Array]]:
        """One SAC step: critic, then actor, then α, then the Polyak target update."""
        k_critic, k_actor = jax.random.split(key)
        opt = self.optimizer
        critic_params, critic_opt, critic_loss, critic_aux = grad_step(
            self.critic_loss, state.critic_params, state.critic_opt, opt, state, batch, k_critic
        )
        state = state.replace(critic_params=critic_params, critic_opt=critic_opt)
        actor_params, actor_opt, actor_loss, actor_aux = grad_step(
            self.actor_loss, state.actor_params, state.actor_opt, opt, state, batch, k_actor
        )
        entropy = jax.lax.stop_gradient(actor_aux["entropy"])
        log_alpha, alpha_opt, _, _ = grad_step(self.alpha_loss, state.log_alpha, state.alpha_opt, opt, entropy)
        target = optax.incremental_update(critic_params, state.target_critic_params, self.config.tau)
        state = state.replace(
            actor_params=actor_params,
            actor_opt=actor_opt,
            log_alpha=log_alpha,
            alpha_opt=alpha_opt,
            target_critic_params=target,
        )
        metrics = {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "alpha": jnp.exp(log_alpha),
            **critic_aux,
            **actor_aux,
        }
        return state, metrics

    # ---- HIPI-RL values for all (sample, task) pairs ----------------------------------------------

    def first_q(self, critic_params, obs: Array, action: Array, task: Array) -> Array:
        """Q_1(s, a, ψ), the first of the twin critics alone (inputs broadcast): the value the authors'
        released code scores relabeling pairs with ("the critic network's first output"), at half
        the cost of both."""
        first = jax.tree.map(lambda x: x[:1], critic_params)
        return Critic(self.config.hidden, self.config.critic_bounds, members=1).apply(first, obs, action, task)[0]

    def soft_q_matrix(self, state: SACState, obs: Array, action: Array, tasks: Array) -> Array:
        """Q̃(s_i, a_i, ψ) = Q_1 (`first_q`) for every pair (Eq. 8): [B, K] from obs/action [B, .] and
        tasks [K, .] (shared by all samples) or [B, K, .] / [1, K, .] (broadcast)."""
        tasks = tasks[None] if tasks.ndim == 2 else tasks
        return self.first_q(state.critic_params, obs[:, None], action[:, None], tasks)

    def soft_backup_matrix(
        self,
        state: SACState,
        key: Array,
        obs: Array,
        action: Array,
        next_obs: Array,
        tasks: Array,
        reward: Array,
        done: Array,
    ) -> Array:
        """The estimator of the authors' released code, for every pair: [B, K]
        r_ψj(s_i, a_i) − log π(a_i|s_i, ψ_j) + γ(1 − done_ij) Q_1(s'_i, a', ψ_j), a' ~ π(·|s'_i, ψ_j):
        a one-step estimate of Eq. 13's Q̃, whose sum starts with the entropy term of the current
        action (unscaled by α, as in that code). `tasks` as in `soft_q_matrix`; `reward`, `done`:
        [B, K] under each pair's task."""
        tasks = tasks[None] if tasks.ndim == 2 else tasks
        log_pi = self.log_prob(state.actor_params, obs[:, None], action[:, None], tasks)
        next_action, _ = self.policy(state.actor_params, key, next_obs[:, None], tasks)
        next_q = self.first_q(state.critic_params, next_obs[:, None], next_action, tasks)
        return reward - log_pi + self.config.gamma * (1.0 - done) * next_q

    def state_value_matrix(self, state: SACState, obs: Array, tasks: Array) -> Array:
        """V(s_i, ψ) = min_k Q_k(s_i, tanh(mean of π(·|s_i, ψ)), ψ) for every pair, Generalized Hindsight's
        baseline for the advantage: [B, K]; `tasks` as in `soft_q_matrix`."""
        tasks = tasks[None] if tasks.ndim == 2 else tasks
        action = self.act(state.actor_params, None, obs[:, None], tasks, deterministic=True)
        return self.critic.apply(state.critic_params, obs[:, None], action, tasks).min(0)

    def relabel_values(self, state: SACState, estimator: str) -> Callable:
        """HIPI-RL's `relabel.ValuesFn` (Eq. 8, Alg. 1): 'critic' = the soft Q of every pair;
        'backup' = the released code's one-step soft backup (`soft_backup_matrix`); 'state_value' =
        `state_value_matrix` of the given states (the action, s', reward and done are not read)."""
        if estimator == "critic":
            return lambda key, obs, action, next_obs, tasks, reward, done: self.soft_q_matrix(state, obs, action, tasks)
        if estimator == "backup":
            return partial(self.soft_backup_matrix, state)
        if estimator == "state_value":
            return lambda key, obs, action, next_obs, tasks, reward, done: self.state_value_matrix(state, obs, tasks)
        raise ValueError(f"value estimator {estimator!r} is unknown; valid: critic, backup, state_value")
