"""Hindsight relabeling strategies, with inverse RL (HIPI, Alg. 1) at the centre.

Every strategy proposes a new task for each sample; `relabel_fraction` of the batch takes it
(App. D: 50%), the rest keeps its commanded task; then reward and done are recomputed under the
task each sample ends up with, so a relabeled goal-reaching sample that now succeeds is terminal.
`final` and `future` are done at sample time (the paper added augmented copies at insert time;
in expectation the two are the same mixture).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from hipi_jax.tasks import TaskFamily
from hipi_jax.types import Batch, Sample

Array = jax.Array

STRATEGIES = ("none", "random", "final", "future", "inverse_rl", "inverse_rl_no_partition")
HINDSIGHT_GOAL_STRATEGIES = ("final", "future")
INVERSE_RL_STRATEGIES = ("inverse_rl", "inverse_rl_no_partition")
CANDIDATE_SOURCES = ("tasks", "achieved", "tasks+achieved")

# values_fn(key, sample, candidates [K, task_dim]) -> [batch, K] values R_ψj(s_i, a_i) (Eq. 8)
ValuesFn = Callable[[Array, Sample, Array], Array]


def inverse_rl_log_probs(values: Array, *, use_partition: bool = True) -> Array:
    """log q(ψ_j | s_i, a_i) ∝ R_ψj(s_i, a_i) − log Z(ψ_j) (Eq. 7, 8, 14; Alg. 1).

    `values[i, j]` is Q̃(s_i, a_i, ψ_j) for HIPI-RL or R_ψj(τ_i) for HIPI-BC, shape
    [num_samples, num_tasks]. log Z_j = logsumexp_i values[i, j] − log(num_samples), the Monte Carlo
    estimate of Alg. 1; `use_partition=False` drops it (the Fig. 8 ablation). Written stably: each
    column is centred on its maximum before log Z is taken, so the O(1) part of log Z survives
    values of any magnitude. Finite-safe: −inf marks an impossible pair and gets probability 0; a
    task impossible for every sample keeps probability 0; a sample for which every task is
    impossible gets the uniform distribution; +inf is clipped to the largest finite value. Never NaN
    for non-NaN input.
    """
    values = jax.lax.stop_gradient(jnp.asarray(values))
    finfo = jnp.finfo(values.dtype)
    impossible = values == -jnp.inf
    values = jnp.minimum(values, finfo.max)
    if use_partition:
        column_max = jnp.max(values, axis=0)
        centred = values - jnp.where(jnp.isfinite(column_max), column_max, 0.0)  # <= 0, exact near the max
        log_z_rest = jax.nn.logsumexp(centred, axis=0) - math.log(values.shape[0])  # in [-log N, 0] or -inf
        values = centred - jnp.where(jnp.isfinite(log_z_rest), log_z_rest, 0.0)
        values = jnp.where(impossible, -jnp.inf, jnp.maximum(values, finfo.min))  # overflow is not impossibility
    impossible_row = jnp.all(impossible, axis=1, keepdims=True)
    values = jnp.where(impossible_row, 0.0, values)
    return jax.nn.log_softmax(values, axis=1)


def log_partition(values: Array) -> Array:
    """log Z(ψ_j) = log mean_i exp(values[i, j]) (Alg. 1), for diagnostics and tests."""
    return jax.nn.logsumexp(values, axis=0) - math.log(values.shape[0])


def candidate_tasks(
    key: Array, sample: Sample, family: TaskFamily, num_prior: int = 0, source: str = "tasks", limit: int = 0
) -> Array:
    """Candidate tasks for inverse RL: [K, task_dim]. A finite family offers its whole task set.
    Otherwise `source` picks them: "tasks" = the batch's own commanded tasks (Alg. 1); "achieved" =
    the goals the batch reached, φ(s′) (the authors' code's state candidates; goal families only);
    "tasks+achieved" = both. `num_prior` draws from the prior are appended. `limit` > 0 keeps a
    uniformly random subset of that many (K ≤ B bounds the B × K kernel's cost)."""
    candidates = _all_candidates(key, sample, family, num_prior, source)
    if 0 < limit < candidates.shape[0]:
        candidates = candidates[jax.random.permutation(jax.random.fold_in(key, 1), candidates.shape[0])[:limit]]
    return candidates


def _all_candidates(key: Array, sample: Sample, family: TaskFamily, num_prior: int, source: str) -> Array:
    fixed = family.candidate_tasks()
    if fixed is not None:
        return fixed
    if source not in CANDIDATE_SOURCES:
        raise ValueError(f"unknown candidate source {source!r}; valid: {', '.join(CANDIDATE_SOURCES)}")
    tr = sample.transition
    wanted = source.split("+")
    parts = [tr.task] if "tasks" in wanted else []
    if "achieved" in wanted:
        parts.append(family.achieved_task(tr.features, tr.task))
    if num_prior > 0:
        parts.append(family.sample(key, num_prior))
    return jnp.concatenate(parts, axis=0)


def propose_tasks(
    key: Array,
    sample: Sample,
    strategy: str,
    family: TaskFamily,
    values_fn: ValuesFn | None = None,
    num_prior_candidates: int = 0,
    candidate_source: str = "tasks",
    num_candidates: int = 0,
) -> Array:
    """The task each sample would be relabeled with under `strategy`: [batch, task_dim]."""
    tasks = sample.transition.task
    if strategy == "none":
        return tasks
    if strategy == "random":
        return family.sample(key, tasks.shape[0])
    if strategy == "final":
        return family.achieved_task(sample.final_features, tasks)
    if strategy == "future":
        return family.achieved_task(sample.future_features, tasks)
    if strategy in INVERSE_RL_STRATEGIES:
        if values_fn is None:
            raise ValueError(f"relabel strategy {strategy!r} needs a values_fn (the critic)")
        k_cand, k_values, k_pick = jax.random.split(key, 3)
        candidates = candidate_tasks(k_cand, sample, family, num_prior_candidates, candidate_source, num_candidates)
        values = values_fn(k_values, sample, candidates)  # [batch, K]
        log_q = inverse_rl_log_probs(values, use_partition=strategy == "inverse_rl")
        return candidates[jax.random.categorical(k_pick, log_q, axis=-1)]
    raise ValueError(f"unknown relabel strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}")


def relabel_mask(key: Array, batch_size: int, fraction: Array | float) -> Array:
    """Exactly round(fraction · batch) randomly chosen samples are relabeled (fraction may be traced)."""
    rank = jax.random.permutation(key, batch_size)
    return rank < jnp.round(fraction * batch_size)


def with_task(sample: Sample, task: Array, family: TaskFamily) -> Batch:
    """The batch under `task`: reward and done recomputed from φ(s') (done = terminal under task)."""
    tr = sample.transition
    return Batch(
        obs=tr.obs,
        action=tr.action,
        next_obs=tr.next_obs,
        task=task,
        reward=family.reward(tr.features, tr.action, task),
        done=family.terminal(tr.features, task).astype(jnp.float32),
    )


def relabel(
    key: Array,
    sample: Sample,
    strategy: str,
    family: TaskFamily,
    fraction: Array | float = 0.5,
    values_fn: ValuesFn | None = None,
    num_prior_candidates: int = 0,
    candidate_source: str = "tasks",
    num_candidates: int = 0,
) -> tuple[Batch, dict[str, Array]]:
    """Relabel `fraction` of a replay sample with `strategy` (Alg. 2) and recompute reward and done."""
    k_propose, k_mask = jax.random.split(key)
    proposed = propose_tasks(
        k_propose, sample, strategy, family, values_fn, num_prior_candidates, candidate_source, num_candidates
    )
    mask = relabel_mask(k_mask, proposed.shape[0], fraction)
    task = jnp.where(mask[:, None], proposed, sample.transition.task)
    changed = jnp.any(task != sample.transition.task, axis=-1)
    batch = with_task(sample, task, family)
    return batch, {"relabel_changed": changed.mean(), "batch_reward": batch.reward.mean()}
