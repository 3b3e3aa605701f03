"""Hindsight relabeling: every relabel decision of HIPI-RL, HIPI-BC and the figure scripts.

A `RelabelSpec` names a strategy and its options and is checked once against a task family; the
strategy's rule (`RULES`, one table) proposes a task per sample; `relabel` lets `relabel_fraction`
of the batch take it (App. D: 50%) and recomputes reward and done under the task each sample ends up
with, so a relabeled goal-reaching sample that now succeeds is terminal (Alg. 2).

Alg. 1 (inverse RL) scores every (sample, candidate task) pair with a value function supplied by the
learner (`ValuesFn`; SAC's live in `agents/sac.py`) and draws from the posterior of Eq. 7/8/14
(`posterior_draw`, shared with HIPI-BC). `final` and `future` are correct HER, drawn at sample
time (in expectation the same mixture as the paper's augmented copies).

The `*_released` strategies emulate what the authors' released code computes, to explain the
paper's Fig. 5; they are not the algorithms of the paper (docs/results.md has the evidence):
- rewards and done are evaluated on the *current* state s, φ(s), not on s';
- `final_released` / `future_released`: the code stores the original step and then 1 (`last`) or 4
  (`future`, goals φ(s_j), j ~ U[i, T)) relabeled copies of it next to each other and reads two
  adjacent stored items as (s, s'). A sample is one of those k + 1 items, uniformly: item 0 keeps
  its task, items 1..k carry a hindsight goal, and every item but the last copy is paired with
  another copy of the same step, so s' = s (½ of all samples for `last`, ⅘ for `future`); the
  code's pairs that straddle two episodes (an episode's last copy with the next one's first item)
  are not emulated: the last copy keeps its true s';
- `random_released` (the same default): sample i is handed φ(s_j) of a uniformly drawn batch sample
  j, with a Bernoulli(relabel_fraction) mask, as the released inverse RL hands out its draws;
- `inverse_rl_released` (its default `candidate_task_type="states"`): the posterior is computed over
  the batch's commanded tasks ψ_j with the one-step backup values, but sample i is handed the goal
  achieved by sample j's state, φ(s_j); a Bernoulli(relabel_fraction) mask picks who takes it.
These mix the code's two real configurations. Its README command is `final_released`,
`future_released` and `inverse_rl_released_tasks` (`"tasks"`: sample i is handed the scored ψ_j); its
defaults are the `*_released_defaults` (`keep_current_goal=False`: a step's copies alone, so `last`
has no self-pairs and `future` ¾; `relabel_prob=1.0`: every sample relabeled; `"states"`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from hipi_jax.tasks import TaskFamily
from hipi_jax.types import Batch, Episode, Sample

Array = jax.Array

CANDIDATE_PARTS = ("tasks", "achieved", "future")
VALUE_ESTIMATORS = ("auto", "critic", "backup")
EPISODE_ENDS = ("stored", "released")

# values_fn(key, obs [B, o], action [B, a], next_obs [B, o], tasks [1 | B, K, d], reward [B, K], done [B, K])
#   -> [B, K] values R_ψ(s_i, a_i) of every pair (Eq. 8); reward and done are under each pair's task.
ValuesFn = Callable[[Array, Array, Array, Array, Array, Array, Array], Array]


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


def posterior_draw(key: Array, values: Array, *, use_partition: bool = True) -> tuple[Array, Array]:
    """One draw j_i ~ q(ψ_j | s_i, a_i) per row of `values` [N, K] (Alg. 1 / Alg. 3): (index [N], log q [N, K])."""
    log_q = inverse_rl_log_probs(values, use_partition=use_partition)
    return jax.random.categorical(key, log_q, axis=-1), log_q


def percentile_ranks(returns: Array) -> Array:
    """AIR's score (Generalized Hindsight, Li et al. 2020, approximate IRL relabeling): P[i, j] = the
    share of the other trajectories whose return under ψ_j is below τ_i's, ties counting half, in
    [0, 1]. `returns` is [N, M] (trajectories × tasks). Each task's column is ranked on its own, so P
    is unchanged by any increasing map of one task's returns (a scale, a shift: what log Z gives HIPI)."""
    n = returns.shape[0]

    def column(r):
        ordered = jnp.sort(r)
        below = jnp.searchsorted(ordered, r, side="left")
        not_above = jnp.searchsorted(ordered, r, side="right")
        return (below + not_above - 1).astype(jnp.float32) / (2 * max(n - 1, 1))

    return jax.vmap(column, in_axes=1, out_axes=1)(returns)


def top_k_draw(key: Array, scores: Array, k: int) -> Array:
    """One task index per row of `scores` [N, M], uniform over the row's k best (k = 1: the argmax;
    ties go to the lower index): the selection of Generalized Hindsight's relabelers."""
    best = jax.lax.top_k(scores, k)[1]  # [N, k]
    pick = jax.random.randint(key, (scores.shape[0],), 0, k)
    return jnp.take_along_axis(best, pick[:, None], axis=1)[:, 0]


# ---------------------------------------------------------------- the spec


@dataclasses.dataclass(frozen=True)
class RelabelSpec:
    """What relabeling a run does. Check it against the run's task family with `check`."""

    strategy: str = "inverse_rl"  # a key of RULES
    candidates: str = "tasks"  # inverse RL's candidate tasks: CANDIDATE_PARTS joined by "+"
    prior_candidates: int = 0  # extra candidates drawn from the prior
    num_candidates: int = 0  # K > 0: score a random subset of K candidates (0 = all)
    values: str = "auto"  # value estimator: critic | backup | auto (the strategy's own)
    top_k: int = 1  # advantage / air: a sample takes one of its episode's top_k candidates
    fraction: float = 0.5  # the share of each batch relabeled (App. D); the released HER and *_defaults ignore it
    episode_ends: str = "stored"  # "released": the released env's goal item (`released_episode_ends`)

    def __post_init__(self):
        if self.strategy not in RULES:
            raise ValueError(f"relabel={self.strategy!r} is unknown; valid strategies: {', '.join(RULES)}")
        parts = self.candidates.split("+")
        if any(p not in CANDIDATE_PARTS for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(
                f"candidates={self.candidates!r} is unknown; valid: one or more of {', '.join(CANDIDATE_PARTS)} "
                "joined by '+', e.g. tasks+future"
            )
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"relabel_fraction={self.fraction} is outside [0, 1]")
        if self.values not in VALUE_ESTIMATORS:
            raise ValueError(f"relabel_values={self.values!r} is unknown; valid: {', '.join(VALUE_ESTIMATORS)}")
        for name in ("prior_candidates", "num_candidates"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.top_k < 1:
            raise ValueError(f"top_k={self.top_k} must be >= 1")
        if self.top_k > 1 and not self.rule.trajectory_level:
            raise ValueError(f"top_k={self.top_k} needs relabel advantage or air, not {self.strategy!r}")
        if self.rule.trajectory_level and self.values != "auto":
            raise ValueError(f"relabel_values={self.values!r}: {self.strategy} scores episodes with its own "
                             "estimator; use relabel_values=auto")  # fmt: skip
        if self.rule.value_estimator is None and self.values != "auto":
            raise ValueError(f"relabel_values={self.values!r} needs an inverse-RL strategy, not {self.strategy!r}")
        if self.episode_ends not in EPISODE_ENDS:
            raise ValueError(f"episode_ends={self.episode_ends!r} is unknown; valid: {', '.join(EPISODE_ENDS)}")
        if self.episode_ends == "released" and not self.rule.rewards_on_state:
            raise ValueError(f"episode_ends='released' needs a strategy with rewards on s (the *_released ones, "
                             f"future_on_state), not {self.strategy!r}")  # fmt: skip
        if self.rule.scores_commanded_tasks and self.candidates != "tasks":
            raise ValueError(
                f"candidates={self.candidates!r}: {self.strategy} scores the batch's commanded tasks, "
                "as the released code does; use candidates=tasks"
            )

    @property
    def rule(self) -> Rule:
        return RULES[self.strategy]

    @property
    def value_estimator(self) -> str | None:
        """The estimator that scores pairs, or None for strategies that score nothing."""
        if self.rule.value_estimator is None:
            return None
        return self.rule.value_estimator if self.values == "auto" else self.values

    @property
    def needs_goals(self) -> bool:
        """Proposes achieved goals, or scores them as candidates (goal families only)."""
        scored = self.candidates.split("+") if self.rule.scores_candidates else []
        return self.rule.needs_goals or "achieved" in scored or "future" in scored

    def num_scored(self, family: TaskFamily, batch_size: int) -> int:
        """K, the number of candidate tasks `candidate_tasks` gives for a batch of `batch_size`."""
        finite = family.candidate_tasks()
        k = len(finite) if finite is not None else batch_size * len(self.candidates.split("+")) + self.prior_candidates
        return min(k, self.num_candidates) if self.num_candidates > 0 else k

    def check(self, family: TaskFamily, batch_size: int | None = None) -> None:
        """Raise a one-line ValueError when this spec cannot relabel `family`'s tasks (in batches of
        `batch_size`, when given)."""
        if batch_size is not None and self.top_k > 1 and self.top_k > (k := self.num_scored(family, batch_size)):
            raise ValueError(f"top_k={self.top_k} exceeds the {k} candidate tasks each sample is scored against")
        if self.needs_goals and not family.supports_hindsight_goals:
            what = f"relabel={self.strategy!r}" if self.rule.needs_goals else f"candidates={self.candidates!r}"
            raise ValueError(
                f"{what} needs a goal-reaching task family (tasks achieved by states), which "
                f"{type(family).__name__} lacks; use inverse_rl, inverse_rl_no_partition, random or none"
            )


# ---------------------------------------------------------------- proposals


@struct.dataclass
class Proposal:
    """What a rule proposes for each sample of a batch."""

    task: Array  # [B, task_dim] the task the sample takes if relabeled
    relabeled: Array | None = None  # [B] bool: who takes it; None = an exact relabel_fraction share
    next_obs: Array | None = None  # [B, obs_dim] the s' the sample is paired with; None = its own s'
    info: dict = struct.field(default_factory=dict)  # diagnostics, each a scalar


@dataclasses.dataclass(frozen=True)
class Rule:
    """A strategy: its proposal function and its conventions."""

    propose: Callable  # (spec, key, sample, family, fraction, values_fn) -> Proposal
    value_estimator: str | None = None  # the default estimator of a strategy that scores pairs
    needs_goals: bool = False  # proposes achieved goals (goal families only)
    rewards_on_state: bool = False  # the released code's convention: r and done from φ(s), not φ(s')
    trajectory_level: bool = False  # scores each sample's whole episode (`Sample.episode`)
    # how a whole trajectory picks its task from its returns (`relabel_trajectories`: HIPI-BC, advantage, air)
    choose: Callable | None = None  # (key, spec, returns [N, M], baseline [N | 1, M] | None) -> index [N]

    @property
    def scores_commanded_tasks(self) -> bool:
        """The released inverse RL (pairs scored with rewards on s): its candidates are the batch's commanded tasks."""
        return self.value_estimator is not None and self.rewards_on_state

    @property
    def scores_candidates(self) -> bool:
        """Draws from `candidate_tasks` (inverse RL, advantage, air)."""
        return self.value_estimator is not None or self.trajectory_level


def candidate_tasks(key: Array, sample: Sample, family: TaskFamily, spec: RelabelSpec) -> Array:
    """Inverse RL's candidate tasks [K, task_dim]. A finite family offers its whole task set. Otherwise
    `spec.candidates` joins: "tasks" = the batch's commanded tasks (Alg. 1); "achieved" = the goals its
    transitions reached, φ(s'); "future" = the goals each sample's own episode reaches later (`future`'s
    φ, one of the next 4 states); then `prior_candidates` draws from the prior. `num_candidates` K > 0
    keeps a uniformly random subset of K (K ≤ B bounds the B × K kernel's cost)."""
    candidates = family.candidate_tasks()
    if candidates is None:
        tr = sample.transition
        source = {
            "tasks": lambda: tr.task,
            "achieved": lambda: family.achieved_task(tr.features, tr.task),
            "future": lambda: family.achieved_task(sample.future_features, tr.task),
        }
        parts = [source[p]() for p in spec.candidates.split("+")]
        if spec.prior_candidates > 0:
            parts.append(family.sample(key, spec.prior_candidates))
        candidates = jnp.concatenate(parts, axis=0)
    k = spec.num_candidates
    if 0 < k < candidates.shape[0]:
        candidates = candidates[jax.random.permutation(jax.random.fold_in(key, 1), candidates.shape[0])[:k]]
    return candidates


def _pair_rewards(family: TaskFamily, features: Array, action: Array, tasks: Array) -> tuple[Array, Array]:
    """Reward and done of every (sample, task) pair: features [B, f], tasks [1 | B, K, d] -> [B, K]."""
    reward = family.reward(features[:, None], action[:, None], tasks)
    done = family.terminal(features[:, None], tasks).astype(jnp.float32)
    return jnp.broadcast_to(reward, done.shape), done


def _score(values_fn: ValuesFn | None, key, sample: Sample, family, tasks: Array, on_state: bool) -> Array:
    """values_fn on every (sample, task) pair of `tasks` [1 | B, K, d], with the rule's reward convention."""
    if values_fn is None:
        raise ValueError("an inverse-RL strategy needs a values_fn (the learner's value estimator)")
    tr = sample.transition
    reward, done = _pair_rewards(family, tr.obs_features if on_state else tr.features, tr.action, tasks)
    return values_fn(key, tr.obs, tr.action, tr.next_obs, tasks, reward, done)


def _commanded_values(key, values: Array, sample, family, values_fn, spec) -> Array:
    """Q̃ of each sample's commanded task [B]: the diagonal of `values` when the candidates are the
    batch's own commanded tasks in order (Alg. 1's default), else one more evaluation."""
    own = family.candidate_tasks() is None and spec.candidates == "tasks" and spec.prior_candidates == 0
    if own and values.shape[0] == values.shape[1]:
        return jnp.diagonal(values)
    return _score(values_fn, key, sample, family, sample.transition.task[:, None], False)[:, 0]


def _posterior_info(values: Array, pick: Array, log_q: Array, commanded: Array) -> dict:
    """Diagnostics of an inverse-RL draw: the posterior's entropy and the values of the chosen and of
    the commanded task (averaged over the batch)."""
    entropy = -jnp.sum(jnp.where(log_q > -jnp.inf, jnp.exp(log_q) * log_q, 0.0), axis=-1)
    chosen = jnp.take_along_axis(values, pick[:, None], axis=1)[:, 0]
    return {"posterior_entropy": entropy.mean(), "soft_q_chosen": chosen.mean(), "soft_q_commanded": commanded.mean()}


def _none(spec, key, sample, family, fraction, values_fn) -> Proposal:
    return Proposal(task=sample.transition.task)


def _random(spec, key, sample, family, fraction, values_fn) -> Proposal:
    return Proposal(task=family.sample(key, sample.transition.task.shape[0]))


def _final(spec, key, sample, family, fraction, values_fn) -> Proposal:
    return Proposal(task=family.achieved_task(sample.final_features, sample.transition.task))


def _inverse_rl(use_partition: bool) -> Callable:
    def propose(spec, key, sample, family, fraction, values_fn) -> Proposal:
        k_cand, k_values, k_pick, k_own = jax.random.split(key, 4)
        candidates = candidate_tasks(k_cand, sample, family, spec)
        values = _score(values_fn, k_values, sample, family, candidates[None], False)  # [B, K]
        pick, log_q = posterior_draw(k_pick, values, use_partition=use_partition)
        info = _posterior_info(values, pick, log_q, _commanded_values(k_own, values, sample, family, values_fn, spec))
        return Proposal(task=candidates[pick], info=info)

    return propose


def episode_returns(
    family: TaskFamily, episode: Episode, tasks: Array, gamma: float = 1.0, until_terminal: bool = True
) -> Array:
    """The returns matrix of trajectory-level relabeling, shared by HIPI-RL's advantage / air and
    HIPI-BC (Alg. 3): Σ_t γ^t r_ψ(s_t, a_t) of each episode under each task, [B, K] from tasks [K, d].
    t counts from the earliest stored step; with `until_terminal` an episode ends at its first
    terminal step under ψ (a goal's first success), as it would have run under ψ."""
    features, action = episode.features[:, :, None], episode.action[:, :, None]  # [B, T, 1, .]
    reward = family.reward(features, action, tasks)  # [B, T, K]
    t = jnp.cumsum(episode.mask, axis=1) - 1  # steps since the earliest stored one
    weight = jnp.where(episode.mask, gamma ** jnp.maximum(t, 0).astype(jnp.float32), 0.0)[:, :, None]
    if until_terminal:  # steps up to the first terminal one (argmax, cheaper than a cumulative product)
        done = family.terminal(features, tasks) & episode.mask[:, :, None]  # [B, T, K]
        steps = jnp.arange(done.shape[1])[None, :, None]
        first = jnp.where(done.any(axis=1), jnp.argmax(done, axis=1), done.shape[1])[:, None]  # [B, 1, K]
        weight = jnp.where(steps <= first, weight, 0.0)
    return jnp.sum(weight * reward, axis=1)


def _choose_posterior(use_partition: bool) -> Callable:
    def choose(key, spec, returns, baseline):  # Alg. 3: ψ̃_i ~ q(ψ | τ_i) (Eq. 7)
        return posterior_draw(key, returns, use_partition=use_partition)[0]

    return choose


def _choose_advantage(key, spec, returns, baseline):  # Generalized Hindsight: top_k of R_ψ(τ) − V(ψ)
    return top_k_draw(key, returns - baseline, spec.top_k)


def _choose_air(key, spec, returns, baseline):  # Generalized Hindsight's AIR: top_k of the percentile ranks
    return top_k_draw(key, percentile_ranks(returns), spec.top_k)


def relabel_trajectories(key: Array, spec: RelabelSpec, returns: Array, baseline: Array | None = None) -> Array:
    """Whole-trajectory relabeling, the one entry point of HIPI-BC (Alg. 3) and of HIPI-RL's `advantage`
    and `air`: from the returns matrix [N, M] (trajectories × candidate tasks, `episode_returns`), one
    candidate index per trajectory [N]. inverse_rl / inverse_rl_no_partition: a draw from q(ψ | τ)
    (Eq. 7, with / without log Z); advantage: one of the `spec.top_k` best by R_ψ(τ) − `baseline` (a
    value of each task: the critic's V(s_0, ψ) [N, M] in HIPI-RL, the data's mean return [M] in HIPI-BC);
    air: one of the top_k best by `percentile_ranks`."""
    if spec.rule.choose is None:
        valid = ", ".join(name for name, rule in RULES.items() if rule.choose is not None)
        raise ValueError(f"relabel={spec.strategy!r} does not relabel whole trajectories; valid: {valid}")
    return spec.rule.choose(key, spec, returns, baseline)


def _trajectory(spec, key, sample, family, fraction, values_fn, gamma=None) -> Proposal:
    """Generalized Hindsight (Li, Pinto, Abbeel 2020) at sample time: each sample's whole stored episode
    is scored under the candidates and relabeled by `relabel_trajectories`; the advantage's baseline is
    V(s_0, ψ) = the critic at the policy's mean action, via `values_fn`. Every sample keeps its own
    (s, a, s'): no s→s pairs."""
    k_cand, k_values, k_pick = jax.random.split(key, 3)
    candidates = candidate_tasks(k_cand, sample, family, spec)
    if gamma is None:
        raise ValueError(f"relabel={spec.strategy!r} discounts episode returns: relabel(..., gamma=) is needed")
    returns = episode_returns(family, sample.episode, candidates, gamma)  # [B, K]
    baseline = None
    if spec.rule.value_estimator is not None:  # advantage
        tr, first = sample.transition, sample.episode.first_obs
        baseline = values_fn(k_values, first, tr.action, tr.next_obs, candidates[None], returns, returns)
    pick = relabel_trajectories(k_pick, spec, returns, baseline)
    chosen = jnp.take_along_axis(returns, pick[:, None], axis=1)[:, 0]
    return Proposal(task=candidates[pick], info={"episode_return_chosen": chosen.mean()})


def _handed_out(handout: str, sample: Sample, family: TaskFamily, pick: Array) -> Array:
    """The task the released `_soft_relabel` gives sample i for its draw j: ψ_j (`candidate_task_type`
    "tasks", Alg. 1) or the goal achieved by sample j's state, φ(s_j) ("states", the code's default)."""
    tr = sample.transition
    return tr.task[pick] if handout == "tasks" else family.achieved_task(tr.obs_features[pick], tr.task)


def _inverse_rl_released(handout: str = "states", share: float | None = None) -> Callable:
    """The released inverse RL: the posterior over the batch's commanded tasks ψ_j with the one-step backup
    values, sample i handed `_handed_out(handout)`; a Bernoulli mask relabels a `share` of the batch (its
    `relabel_prob`; None = relabel_fraction)."""

    def propose(spec, key, sample, family, fraction, values_fn) -> Proposal:
        k_values, k_pick, k_mask = jax.random.split(key, 3)
        tr = sample.transition
        values = _score(values_fn, k_values, sample, family, tr.task[None], True)  # scored: commanded ψ_j
        pick, log_q = posterior_draw(k_pick, values)  # normalize_cols: log Z up to a constant
        info = _posterior_info(values, pick, log_q, jnp.diagonal(values))  # scored against the batch's own tasks
        relabeled = jax.random.bernoulli(k_mask, fraction if share is None else share, pick.shape)
        return Proposal(task=_handed_out(handout, sample, family, pick), relabeled=relabeled, info=info)

    return propose


def _random_released(share: float | None = None) -> Callable:
    """The released `random`: a uniform draw j over the batch (all logits equal), sample i handed φ(s_j)
    (the code's default "states"), with the same mask as `_inverse_rl_released`."""

    def propose(spec, key, sample, family, fraction, values_fn) -> Proposal:
        k_pick, k_mask = jax.random.split(key)
        n = sample.transition.task.shape[0]
        pick = jax.random.randint(k_pick, (n,), 0, n)
        relabeled = jax.random.bernoulli(k_mask, fraction if share is None else share, (n,))
        return Proposal(task=_handed_out("states", sample, family, pick), relabeled=relabeled)

    return propose


def _future_with(rest_goals: bool = False, self_pairs: bool = False, share: float | None = None) -> Callable:
    """HER's `future` (a goal of one of the next 4 states, App. C.1), or with one factor of
    `future_released` (issue #35's ablation): goals φ(s_j),
    j ~ U[i, T) (`rest_goals`); s' = s for a Bernoulli(⅘) share of the samples, drawn independently of
    who is relabeled (`self_pairs`); a Bernoulli(`share`) relabeled share instead of relabel_fraction.
    The fourth factor, rewards on φ(s), is `Rule.rewards_on_state`."""

    def propose(spec, key, sample, family, fraction, values_fn) -> Proposal:
        k_pair, k_share = jax.random.split(key)
        tr = sample.transition
        goal = sample.released_future_features if rest_goals else sample.future_features
        n = tr.task.shape[:1]
        relabeled = None if share is None else jax.random.bernoulli(k_share, share, n)
        next_obs, info = None, {}
        if self_pairs:
            paired = jax.random.bernoulli(k_pair, 4 / 5, n)  # future_released's share: k / (k + 1), k = 4 copies
            next_obs, info = jnp.where(paired[:, None], tr.obs, tr.next_obs), {"self_pairs": jnp.mean(paired)}
        return Proposal(task=family.achieved_task(goal, tr.task), relabeled=relabeled, next_obs=next_obs, info=info)

    return propose


def _her_released(copies: int, keep_current_goal: bool = True) -> Callable:
    """The released HER's stored items of a step: the original (with `keep_current_goal`) and `copies`
    relabeled copies, side by side; a sample is one of them, uniformly, paired with the next item (s' = s
    but for the last copy)."""

    def propose(spec, key, sample, family, fraction, values_fn) -> Proposal:
        tr = sample.transition
        first = 0 if keep_current_goal else 1  # item 0 = the original, 1..copies = the copies
        item = jax.random.randint(key, tr.task.shape[:1], first, copies + 1)
        goal = sample.released_final_features if copies == 1 else sample.released_future_features
        next_obs = jnp.where((item < copies)[:, None], tr.obs, tr.next_obs)  # paired with a copy of itself
        info = {"self_pairs": jnp.mean(item < copies)}
        return Proposal(task=family.achieved_task(goal, tr.task), relabeled=item > 0, next_obs=next_obs, info=info)

    return propose


RULES: dict[str, Rule] = {
    "none": Rule(_none),
    "random": Rule(_random),
    "final": Rule(_final, needs_goals=True),
    "future": Rule(_future_with(), needs_goals=True),
    "inverse_rl": Rule(_inverse_rl(True), value_estimator="critic", choose=_choose_posterior(True)),
    "inverse_rl_no_partition": Rule(_inverse_rl(False), value_estimator="critic", choose=_choose_posterior(False)),
    # the released code (module docstring): the README command's HER (keep_current_goal=True, relabel_prob 0.5)
    # with the default candidate_task_type="states" for inverse RL and random, a mix of its two configurations
    "final_released": Rule(_her_released(1), needs_goals=True, rewards_on_state=True),
    "future_released": Rule(_her_released(4), needs_goals=True, rewards_on_state=True),
    "inverse_rl_released": Rule(
        _inverse_rl_released(), value_estimator="backup", needs_goals=True, rewards_on_state=True
    ),
    "random_released": Rule(_random_released(), needs_goals=True, rewards_on_state=True),
    # the README command's inverse RL: candidate_task_type="tasks" hands out the scored ψ_j (relabel_prob 0.5)
    "inverse_rl_released_tasks": Rule(_inverse_rl_released("tasks"), value_estimator="backup", rewards_on_state=True),
    # the code's defaults: keep_current_goal=False, relabel_prob=1.0, candidate_task_type="states"
    "final_released_defaults": Rule(_her_released(1, False), needs_goals=True, rewards_on_state=True),
    "future_released_defaults": Rule(_her_released(4, False), needs_goals=True, rewards_on_state=True),
    "inverse_rl_released_defaults": Rule(
        _inverse_rl_released("states", 1.0), value_estimator="backup", needs_goals=True, rewards_on_state=True
    ),
    "random_released_defaults": Rule(_random_released(1.0), needs_goals=True, rewards_on_state=True),
    # `future` with one factor of `future_released` at a time (docs/results.md, the HER ablation)
    "future_rest_goals": Rule(_future_with(rest_goals=True), needs_goals=True),
    "future_self_pairs": Rule(_future_with(self_pairs=True), needs_goals=True),
    "future_on_state": Rule(_future_with(), needs_goals=True, rewards_on_state=True),
    "future_share45": Rule(_future_with(share=0.8), needs_goals=True),
    "advantage": Rule(_trajectory, value_estimator="state_value", trajectory_level=True, choose=_choose_advantage),
    "air": Rule(_trajectory, trajectory_level=True, choose=_choose_air),
}
STRATEGIES = tuple(RULES)


# ---------------------------------------------------------------- applying a spec


def relabel_mask(batch_size: int, fraction: Array | float) -> Array:
    """The first round(fraction · batch) samples are relabeled (fraction may be traced). The rows of a
    replay sample are i.i.d., so this is a uniformly random subset of that size in distribution, without
    the cost of drawing one."""
    return jnp.arange(batch_size) < jnp.round(fraction * batch_size)


def with_task(sample: Sample, task: Array, family: TaskFamily, next_obs: Array | None = None, on_state=False) -> Batch:
    """The batch under `task`: reward and done recomputed from φ(s') (or φ(s) with `on_state`)."""
    tr = sample.transition
    features = tr.obs_features if on_state else tr.features
    return Batch(
        obs=tr.obs,
        action=tr.action,
        next_obs=tr.next_obs if next_obs is None else next_obs,
        task=task,
        reward=family.reward(features, tr.action, task),
        done=family.terminal(features, task).astype(jnp.float32),
    )


def released_episode_ends(key: Array, sample: Sample, family: TaskFamily) -> Sample:
    """The released env's end of an episode that reaches its commanded goal. Its step evaluates reward
    and done on the state before the dynamics step, so it stores one more item, the goal state s_T,
    which succeeds under rewards on s; here the episode ends at the transition into s_T, whose reward
    on s does not. Emulated at sample time: the last step of such an episode stands, with probability
    ½, for that item (s = s' = s_T; its action is the stored one, the released item's is the policy's);
    and the released HER goals of its steps may be s_T: `last`'s always, `future`'s j ~ U[i, T] with
    s_T the (T + 1)-th choice. Other samples are unchanged."""
    tr = sample.transition
    k_item, k_future = jax.random.split(key)
    reached = family.terminal(sample.final_features, tr.task)  # the episode ended on its commanded goal
    goal_item = reached & (sample.steps_left == 0) & jax.random.bernoulli(k_item, 0.5, reached.shape)
    n = sample.steps_left + 1  # stored steps from the sample's to the episode's last
    to_goal = reached & (jax.random.randint(k_future, n.shape, 0, n + 1) == n)  # s_T, one of n + 1 choices
    goal = sample.final_features  # φ(s_T): the last stored step's φ(s')
    at_goal = lambda x, y, where: jnp.where(where[:, None], x, y)  # noqa: E731
    return sample.replace(
        transition=tr.replace(
            obs=at_goal(tr.next_obs, tr.obs, goal_item), obs_features=at_goal(tr.features, tr.obs_features, goal_item)
        ),
        released_final_features=at_goal(goal, sample.released_final_features, reached),
        released_future_features=at_goal(goal, sample.released_future_features, to_goal | goal_item),
    )


def _safe_mean(x: Array, where: Array) -> Array:
    return jnp.sum(jnp.where(where, x, 0.0)) / jnp.maximum(jnp.sum(where), 1)


def propose(spec: RelabelSpec, key, sample: Sample, family: TaskFamily, fraction, values_fn, gamma=None) -> Proposal:
    """The rule's proposal for every sample (before `fraction` picks who takes it). Only whole-trajectory
    rules discount episode returns, so only they are handed `gamma`: a custom rule keeps the six
    arguments of `Rule.propose`."""
    discount = {"gamma": gamma} if spec.rule.trajectory_level else {}
    return spec.rule.propose(spec, key, sample, family, fraction, values_fn, **discount)


def relabel(
    key: Array,
    sample: Sample,
    spec: RelabelSpec,
    family: TaskFamily,
    fraction: Array | float | None = None,
    values_fn: ValuesFn | None = None,
    gamma: Array | float | None = None,
) -> tuple[Batch, dict[str, Array]]:
    """Relabel a replay sample as `spec` says (Alg. 2) and recompute reward and done. `fraction`
    (default `spec.fraction`) and `gamma` (the discount of `advantage` and `air`'s episode returns) may
    be a run's traced values.

    Metrics: `relabel_changed` (share of samples whose task changed), `batch_reward`, and over the
    relabeled samples `relabel_success` (goal families: the share that succeed under their new task)
    and `relabel_kept` (the share whose proposal is their own task); inverse RL adds
    `posterior_entropy`, `soft_q_chosen` and `soft_q_commanded`; released HER adds `self_pairs`."""
    rule = spec.rule
    if rule.trajectory_level and sample.episode is None:
        raise ValueError(f"relabel={spec.strategy!r} needs each sample's episode: buffer.sample(episode_steps=T)")
    fraction = spec.fraction if fraction is None else fraction
    if spec.episode_ends == "released":
        sample = released_episode_ends(jax.random.fold_in(key, 1), sample, family)  # `key` stays the rule's
    proposal = propose(spec, key, sample, family, fraction, values_fn, gamma)
    commanded = sample.transition.task
    relabeled = proposal.relabeled
    if relabeled is None:
        relabeled = relabel_mask(commanded.shape[0], fraction)
    task = jnp.where(relabeled[:, None], proposal.task, commanded)
    batch = with_task(sample, task, family, proposal.next_obs, rule.rewards_on_state)
    metrics = {
        "relabel_changed": jnp.any(task != commanded, axis=-1).mean(),
        "batch_reward": batch.reward.mean(),
        "relabel_kept": _safe_mean(jnp.all(proposal.task == commanded, axis=-1), relabeled),
        **proposal.info,
    }
    if family.has_success:  # goal families end on success, so done is success under the new task
        metrics["relabel_success"] = _safe_mean(batch.done > 0, relabeled)
    return batch, metrics
